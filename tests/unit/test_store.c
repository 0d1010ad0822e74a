/*
 * test_store.c - the SQLite store (store/sqlite.c) against real database
 * files in a fresh mkdtemp directory per test: migrations (fresh, re-open,
 * upgrade from an older version, refusal of a newer one), orgs, API keys,
 * sandboxes, events, concurrent use, and the first-start bootstrap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/common.h"
#include "core/apikey.h"
#include "core/id.h"
#include "store/migrations.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    struct sb_store *store;
    struct sb_org org;      /* "acme" */
    struct sb_org other;    /* "globex" */
};

static int newest_migration(void)
{
    return sb_migrations[sb_migration_count - 1].version;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sb-store-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    struct sb_err err = {0};
    if (store_open(f->dir, &f->store, &err) < 0) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return -1;
    }
    if (store_org_create(f->store, "acme", &f->org, &err) < 0 ||
        store_org_create(f->store, "globex", &f->other, &err) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->store);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Runs one SQL statement on the fixture's database file through a separate
 * connection and returns the first column of the first row as an integer. */
static long long sql_int(const char *dir, const char *sql)
{
    char path[128];
    snprintf(path, sizeof path, "%s/sandbase.db", dir);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- migrations ---- */

static void test_migrations_fresh_and_reopen(void **state)
{
    struct fixture *f = *state;
    assert_true(sb_migration_count >= 2);
    assert_int_equal(store_schema_version(f->store), newest_migration());
    assert_int_equal(sql_int(f->dir, "PRAGMA user_version"), newest_migration());
    assert_int_equal(sql_int(f->dir, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                                     "('orgs','api_keys','sandboxes','events')"), 4);

    /* Re-open: nothing re-applied, data kept, same version. */
    store_close(f->store);
    struct sb_err err = {0};
    assert_int_equal(store_open(f->dir, &f->store, &err), 0);
    assert_int_equal(store_schema_version(f->store), newest_migration());
    assert_int_equal(sql_int(f->dir, "PRAGMA user_version"), newest_migration());
    struct sb_org org;
    assert_int_equal(store_org_get_by_name(f->store, "acme", &org, &err), 0);
    assert_string_equal(org.id, f->org.id);
    assert_int_equal(sql_int(f->dir, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
}

static void test_migrations_upgrade_from_first(void **state)
{
    struct fixture *f = *state;
    char dir[96], path[128];
    snprintf(dir, sizeof dir, "%s/old", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/sandbase.db", dir);

    /* An installation that only ever saw migration 1, with data in it. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sb_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA user_version = %d", sb_migrations[0].version);
    assert_int_equal(sqlite3_exec(db, bump, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO orgs VALUES ('org_aaaaaaaaaaaaaaaaaaaa', 'old', 1)",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sql_int(dir, "SELECT count(*) FROM sqlite_schema WHERE name = 'sandboxes'"), 0);

    struct sb_store *store;
    struct sb_err err = {0};
    assert_int_equal(store_open(dir, &store, &err), 0);
    assert_int_equal(store_schema_version(store), newest_migration());
    struct sb_org org;
    assert_int_equal(store_org_get_by_name(store, "old", &org, &err), 0);
    struct sb_sandbox_rec rec = {.status = SB_SANDBOX_RUNNING, .started_at = 1, .end_at = 2, .cpu_count = 1,
                                 .memory_mb = 64, .disk_mb = 64};
    snprintf(rec.id, sizeof rec.id, "sbx_aaaaaaaaaaaaaaaaaaaa");
    snprintf(rec.org_id, sizeof rec.org_id, "%s", org.id);
    snprintf(rec.template_id, sizeof rec.template_id, "base");
    assert_int_equal(store_sandbox_insert(store, &rec, &err), 0);
    store_close(store);
    assert_int_equal(sql_int(dir, "PRAGMA user_version"), newest_migration());
}

static void test_migrations_refuse_newer_schema(void **state)
{
    struct fixture *f = *state;
    store_close(f->store);
    f->store = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/sandbase.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct sb_err err = {0};
    assert_int_equal(store_open(f->dir, &f->store, &err), -1);
    assert_null(f->store);
    assert_int_equal(err.status, 500);
    assert_non_null(strstr(err.msg, "999"));
}

static void test_open_creates_data_dir(void **state)
{
    struct fixture *f = *state;
    char dir[96];
    snprintf(dir, sizeof dir, "%s/a/b/data", f->dir);
    struct sb_store *store;
    struct sb_err err = {0};
    assert_int_equal(store_open(dir, &store, &err), 0);
    store_close(store);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* A file where the data dir should be is an error, not a crash. */
    char file[96];
    snprintf(file, sizeof file, "%s/plainfile", f->dir);
    fclose(fopen(file, "w"));
    assert_int_equal(store_open(file, &store, &err), -1);
    assert_int_equal(err.status, 500);
}

/* ---- orgs ---- */

static void test_orgs(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    assert_true(sb_id_valid("org_", f->org.id));
    assert_string_equal(f->org.name, "acme");
    assert_true(f->org.created_at > 0);

    assert_int_equal(store_org_create(f->store, "acme", NULL, &err), -1);
    assert_int_equal(err.status, 409);
    assert_string_equal(err.msg, "org already exists: acme");
    assert_int_equal(store_org_create(f->store, "", NULL, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(store_org_create(f->store, "Acme Corp", NULL, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.msg, "invalid org name 'Acme Corp': use 1-63 characters of [a-z0-9_-], "
                                 "starting with a letter or digit");
    assert_int_equal(store_org_create(f->store, "-acme", NULL, &err), -1);
    assert_int_equal(store_org_create(f->store, NULL, NULL, &err), -1);

    struct sb_org got;
    assert_int_equal(store_org_get(f->store, f->other.id, &got, &err), 0);
    assert_string_equal(got.name, "globex");
    assert_int_equal(store_org_get_by_name(f->store, "nope", &got, &err), -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.msg, "org not found: nope");
    assert_int_equal(store_org_get(f->store, "org_zzzzzzzzzzzzzzzzzzzz", &got, &err), -1);
    assert_int_equal(err.status, 404);

    struct sb_org *list;
    size_t n;
    assert_int_equal(store_org_list(f->store, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "acme");     /* creation order */
    assert_string_equal(list[1].name, "globex");
    free(list);
    assert_int_equal(store_org_count(f->store, &n, &err), 0);
    assert_int_equal(n, 2);
}

/* ---- API keys ---- */

static void new_key(struct fixture *f, const char *org_id, const char *label, char key[SB_APIKEY_MAX],
                    struct sb_api_key *row)
{
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    struct sb_err err = {0};
    assert_int_equal(apikey_generate(key, prefix, hash), 0);
    if (store_key_insert(f->store, org_id, prefix, hash, label, row, &err) < 0)
        fail_msg("store_key_insert: %s", err.msg);
}

static int authenticate(struct fixture *f, const char *key, struct sb_api_key *out, struct sb_err *err)
{
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    if (apikey_parse(key, prefix, hash, err) < 0)
        return -1;
    return store_key_authenticate(f->store, prefix, hash, out, err);
}

static void test_keys_insert_authenticate_revoke(void **state)
{
    struct fixture *f = *state;
    char key[SB_APIKEY_MAX];
    struct sb_api_key row, who;
    struct sb_err err = {0};
    new_key(f, f->org.id, "ci", key, &row);
    assert_true(sb_id_valid("key_", row.id));
    assert_string_equal(row.org_name, "acme");
    assert_string_equal(row.label, "ci");
    assert_memory_equal(row.prefix, key, 14);
    assert_int_equal(row.last_used_at, 0);
    assert_int_equal(row.revoked_at, 0);

    assert_int_equal(authenticate(f, key, &who, &err), 0);
    assert_string_equal(who.id, row.id);
    assert_string_equal(who.org_id, f->org.id);
    assert_string_equal(who.org_name, "acme");
    /* The e2b_ spelling of the same secret is the same key. */
    char e2b[SB_APIKEY_MAX];
    snprintf(e2b, sizeof e2b, "e2b_%s", key + 6);
    assert_int_equal(authenticate(f, e2b, &who, &err), 0);
    assert_string_equal(who.id, row.id);

    /* Right prefix, wrong secret. */
    char wrong[SB_APIKEY_MAX];
    snprintf(wrong, sizeof wrong, "%s", key);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == '0' ? '1' : '0';
    assert_int_equal(authenticate(f, wrong, &who, &err), -1);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.msg, "invalid API key");

    /* Revocation takes effect on the very next authentication. */
    assert_int_equal(store_key_revoke(f->store, row.prefix, NULL, NULL, &err), 0);
    assert_int_equal(authenticate(f, key, &who, &err), -1);
    assert_int_equal(err.status, 401);
    assert_int_equal(store_key_revoke(f->store, row.prefix, NULL, NULL, &err), -1);
    assert_int_equal(err.status, 409);
    char expect[64];
    snprintf(expect, sizeof expect, "API key %s is already revoked", row.prefix);
    assert_string_equal(err.msg, expect);

    unsigned char hash[SB_APIKEY_HASH_LEN] = {0};
    assert_int_equal(store_key_insert(f->store, "org_zzzzzzzzzzzzzzzzzzzz", "sk-sb-00000000", hash, "", NULL, &err), -1);
    assert_int_equal(err.status, 404);
}

static void test_keys_same_prefix_candidates(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    /* Two secrets sharing their first 8 chars: both must authenticate as themselves. */
    const char *k1 = "sk-sb-abcdef0011111111111111111111111111111111";
    const char *k2 = "sk-sb-abcdef0022222222222222222222222222222222";
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    struct sb_api_key r1, r2, who;
    assert_int_equal(apikey_parse(k1, prefix, hash, &err), 0);
    assert_int_equal(store_key_insert(f->store, f->org.id, prefix, hash, "one", &r1, &err), 0);
    assert_int_equal(store_key_insert(f->store, f->org.id, prefix, hash, "dup", NULL, &err), -1);
    assert_int_equal(err.status, 409);
    assert_int_equal(apikey_parse(k2, prefix, hash, &err), 0);
    assert_int_equal(store_key_insert(f->store, f->other.id, prefix, hash, "two", &r2, &err), 0);
    assert_int_equal(authenticate(f, k1, &who, &err), 0);
    assert_string_equal(who.id, r1.id);
    assert_int_equal(authenticate(f, k2, &who, &err), 0);
    assert_string_equal(who.id, r2.id);
    assert_string_equal(who.org_name, "globex");
}

/* Inserts the key with this exact text (so tests choose the prefixes). */
static void insert_key(struct fixture *f, const char *org_id, const char *key, struct sb_api_key *row)
{
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    struct sb_err err = {0};
    assert_int_equal(apikey_parse(key, prefix, hash, &err), 0);
    if (store_key_insert(f->store, org_id, prefix, hash, "", row, &err) < 0)
        fail_msg("store_key_insert: %s", err.msg);
}

/* store_key_revoke with a whole key: its exact prefix and hash. */
static int revoke_whole_key(struct fixture *f, const char *key, struct sb_api_key *out, struct sb_err *err)
{
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    assert_int_equal(apikey_parse(key, prefix, hash, err), 0);
    return store_key_revoke(f->store, prefix, hash, out, err);
}

static void test_keys_revoke_by_prefix_or_key(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    const char *k1 = "sk-sb-1a2b3c4d11111111111111111111111111111111";
    const char *k2 = "sk-sb-1a2b999911111111111111111111111111111111";
    const char *k3 = "sk-sb-abcdef0011111111111111111111111111111111";
    const char *k4 = "sk-sb-abcdef0022222222222222222222222222222222";    /* k3's prefix too */
    struct sb_api_key r1, r2, r3, r4, got, who;
    insert_key(f, f->org.id, k1, &r1);
    insert_key(f, f->org.id, k2, &r2);
    insert_key(f, f->org.id, k3, &r3);
    insert_key(f, f->other.id, k4, &r4);

    /* A shorter prefix matching two keys names neither. */
    assert_int_equal(store_key_revoke(f->store, "sk-sb-1a2b", NULL, &got, &err), -1);
    assert_int_equal(err.status, 409);
    assert_string_equal(err.msg, "2 API keys match sk-sb-1a2b: give more characters of the key "
                                 "(`sandbase key list` shows their prefixes) or the whole key");
    assert_int_equal(store_key_revoke(f->store, "sk-sb-ffff", NULL, &got, &err), -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.msg, "no API key matches sk-sb-ffff");

    /* A unique shorter prefix revokes exactly that key, at once. */
    assert_int_equal(store_key_revoke(f->store, "sk-sb-1a2b3", NULL, &got, &err), 0);
    assert_string_equal(got.id, r1.id);
    assert_string_equal(got.prefix, "sk-sb-1a2b3c4d");
    assert_string_equal(got.org_name, "acme");
    assert_true(got.revoked_at > 0);
    assert_int_equal(authenticate(f, k1, &who, &err), -1);
    assert_int_equal(authenticate(f, k2, &who, &err), 0);
    assert_int_equal(store_key_revoke(f->store, "sk-sb-1a2b3c4d", NULL, NULL, &err), -1);
    assert_int_equal(err.status, 409);
    assert_string_equal(err.msg, "API key sk-sb-1a2b3c4d is already revoked");
    /* Revoked keys still count: "sk-sb-1a2b" must not silently mean k2 now. */
    assert_int_equal(store_key_revoke(f->store, "sk-sb-1a2b", NULL, NULL, &err), -1);
    assert_int_equal(err.status, 409);

    /* Two keys with the same stored prefix: only the whole key tells them apart. */
    assert_int_equal(store_key_revoke(f->store, "sk-sb-abcdef00", NULL, NULL, &err), -1);
    assert_int_equal(err.status, 409);
    char e2b[SB_APIKEY_MAX];
    snprintf(e2b, sizeof e2b, "e2b_%s", k4 + 6);
    assert_int_equal(revoke_whole_key(f, e2b, &got, &err), 0);
    assert_string_equal(got.id, r4.id);
    assert_string_equal(got.org_name, "globex");
    assert_int_equal(authenticate(f, k4, &who, &err), -1);
    assert_int_equal(authenticate(f, k3, &who, &err), 0);
    assert_int_equal(revoke_whole_key(f, k4, NULL, &err), -1);
    assert_string_equal(err.msg, "API key sk-sb-abcdef00 is already revoked");
    /* Right prefix, wrong secret: no key, and the message shows only the prefix. */
    assert_int_equal(revoke_whole_key(f, "sk-sb-abcdef0033333333333333333333333333333333", NULL, &err), -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.msg, "no API key matches the key given (prefix sk-sb-abcdef00)");
    assert_int_equal(revoke_whole_key(f, k3, NULL, &err), 0);
    assert_int_equal(authenticate(f, k3, &who, &err), -1);

    assert_int_equal(store_key_revoke(f->store, "", NULL, NULL, &err), -1);
    assert_int_equal(err.status, 400);
    (void)r2; (void)r3;
}

static void test_keys_list_and_touch(void **state)
{
    struct fixture *f = *state;
    char key[SB_APIKEY_MAX];
    struct sb_api_key a, b;
    struct sb_err err = {0};
    new_key(f, f->org.id, "a", key, &a);
    new_key(f, f->other.id, "", key, &b);

    struct sb_api_key *list;
    size_t n;
    assert_int_equal(store_key_list(f->store, NULL, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, a.id);
    assert_string_equal(list[1].id, b.id);
    assert_string_equal(list[1].org_name, "globex");
    free(list);
    assert_int_equal(store_key_list(f->store, f->other.id, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, b.id);
    assert_string_equal(list[0].label, "");
    free(list);

    /* Touch writes the first use, then at most once a minute. */
    const int64_t t0 = 1700000000000;
    int64_t expected[] = {t0, t0, t0, t0 + 61000};
    int64_t at[] = {t0, t0 + 1000, t0 + 59999, t0 + 61000};
    for (size_t i = 0; i < 4; i++) {
        store_key_touch(f->store, a.id, at[i]);
        assert_int_equal(store_key_list(f->store, f->org.id, &list, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(list[0].last_used_at, expected[i]);
        free(list);
    }
}

/* ---- sandboxes ---- */

static struct sb_sandbox_rec sandbox(const char *org_id, enum sb_sandbox_status status, int64_t started_at)
{
    struct sb_sandbox_rec rec = {.status = status, .started_at = started_at, .end_at = started_at + 300000,
                                 .cpu_count = 2, .memory_mb = 512, .disk_mb = 1024};
    sb_id_new("sbx_", rec.id, sizeof rec.id);
    snprintf(rec.org_id, sizeof rec.org_id, "%s", org_id);
    snprintf(rec.template_id, sizeof rec.template_id, "base");
    return rec;
}

/* Every status has a name that parses back to it and that the schema
 * accepts; nothing else parses. */
static void test_sandbox_status_names(void **state)
{
    struct fixture *f = *state;
    static const char *const names[SB_SANDBOX_STATUS_COUNT] = {"creating", "running", "paused", "stopped", "error"};
    for (int i = 0; i < SB_SANDBOX_STATUS_COUNT; i++) {
        enum sb_sandbox_status parsed = SB_SANDBOX_STATUS_COUNT;
        assert_string_equal(sb_sandbox_status_name((enum sb_sandbox_status)i), names[i]);
        assert_int_equal(sb_sandbox_status_parse(names[i], &parsed), 0);
        assert_int_equal(parsed, i);

        struct sb_err err = {0};
        struct sb_sandbox_rec rec = sandbox(f->org.id, (enum sb_sandbox_status)i, 1), got;
        assert_int_equal(store_sandbox_insert(f->store, &rec, &err), 0);
        assert_int_equal(store_sandbox_get(f->store, NULL, rec.id, &got, &err), 0);
        assert_int_equal(got.status, i);
        store_sandbox_rec_clear(&got);
    }
    enum sb_sandbox_status parsed = SB_SANDBOX_RUNNING;
    assert_int_equal(sb_sandbox_status_parse("Running", &parsed), -1);
    assert_int_equal(sb_sandbox_status_parse("", &parsed), -1);
    assert_int_equal(sb_sandbox_status_parse("unknown", &parsed), -1);
    assert_int_equal(sb_sandbox_status_parse(NULL, &parsed), -1);
    assert_int_equal(parsed, SB_SANDBOX_RUNNING);
    assert_string_equal(sb_sandbox_status_name(SB_SANDBOX_STATUS_COUNT), "unknown");
}

static void test_sandbox_insert_get_update(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    struct sb_sandbox_rec rec = sandbox(f->org.id, SB_SANDBOX_RUNNING, 1000);
    rec.metadata_json = "{\"owner\":\"me\"}";
    rec.env_json = "{\"A\":\"1\"}";
    assert_int_equal(store_sandbox_insert(f->store, &rec, &err), 0);
    assert_int_equal(store_sandbox_insert(f->store, &rec, &err), -1);
    assert_int_equal(err.status, 409);

    struct sb_sandbox_rec got;
    assert_int_equal(store_sandbox_get(f->store, f->org.id, rec.id, &got, &err), 0);
    assert_string_equal(got.template_id, "base");
    assert_int_equal(got.status, SB_SANDBOX_RUNNING);
    assert_string_equal(got.metadata_json, "{\"owner\":\"me\"}");
    assert_string_equal(got.env_json, "{\"A\":\"1\"}");
    assert_int_equal(got.started_at, 1000);
    assert_int_equal(got.end_at, 301000);
    assert_int_equal(got.cpu_count, 2);
    assert_int_equal(got.memory_mb, 512);
    assert_int_equal(got.disk_mb, 1024);
    assert_true(got.updated_at > 0);
    store_sandbox_rec_clear(&got);

    /* Another org cannot see it; internal lookups (org NULL) can. */
    assert_int_equal(store_sandbox_get(f->store, f->other.id, rec.id, &got, &err), -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.msg, "sandbox not found");
    assert_int_equal(store_sandbox_get(f->store, NULL, rec.id, &got, &err), 0);
    store_sandbox_rec_clear(&got);

    rec.status = SB_SANDBOX_PAUSED;
    rec.paused_at = 5000;
    rec.end_at = 7000;
    assert_int_equal(store_sandbox_update(f->store, &rec, &err), 0);
    assert_int_equal(store_sandbox_get(f->store, f->org.id, rec.id, &got, &err), 0);
    assert_int_equal(got.status, SB_SANDBOX_PAUSED);
    assert_int_equal(got.paused_at, 5000);
    assert_int_equal(got.end_at, 7000);
    assert_string_equal(got.metadata_json, "{\"owner\":\"me\"}");   /* untouched by update */
    store_sandbox_rec_clear(&got);

    struct sb_sandbox_rec missing = sandbox(f->org.id, SB_SANDBOX_RUNNING, 1);
    assert_int_equal(store_sandbox_update(f->store, &missing, &err), -1);
    assert_int_equal(err.status, 404);
}

static void test_sandbox_insert_rejects_bad_records(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    struct sb_sandbox_rec rec = sandbox(f->org.id, SB_SANDBOX_STATUS_COUNT, 1);   /* no status */
    assert_int_equal(store_sandbox_insert(f->store, &rec, &err), -1);
    assert_int_equal(err.status, 400);
    rec = sandbox(f->org.id, SB_SANDBOX_RUNNING, 1);
    rec.metadata_json = "{not json";
    assert_int_equal(store_sandbox_insert(f->store, &rec, &err), -1);
    assert_int_equal(err.status, 400);
    rec = sandbox("org_zzzzzzzzzzzzzzzzzzzz", SB_SANDBOX_RUNNING, 1);
    assert_int_equal(store_sandbox_insert(f->store, &rec, &err), -1);
    assert_int_equal(err.status, 404);
    /* Defaults for missing JSON. */
    rec = sandbox(f->org.id, SB_SANDBOX_RUNNING, 1);
    assert_int_equal(store_sandbox_insert(f->store, &rec, &err), 0);
    struct sb_sandbox_rec got;
    assert_int_equal(store_sandbox_get(f->store, NULL, rec.id, &got, &err), 0);
    assert_string_equal(got.metadata_json, "{}");
    assert_string_equal(got.env_json, "{}");
    store_sandbox_rec_clear(&got);
}

static void test_sandbox_list_and_count(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    static const enum sb_sandbox_status statuses[] = {SB_SANDBOX_RUNNING, SB_SANDBOX_STOPPED, SB_SANDBOX_PAUSED,
                                                      SB_SANDBOX_CREATING, SB_SANDBOX_ERROR, SB_SANDBOX_RUNNING};
    struct sb_sandbox_rec recs[6];
    for (int i = 0; i < 6; i++) {
        recs[i] = sandbox(f->org.id, statuses[i], 1000 + i);
        assert_int_equal(store_sandbox_insert(f->store, &recs[i], &err), 0);
    }
    struct sb_sandbox_rec theirs = sandbox(f->other.id, SB_SANDBOX_RUNNING, 9999);
    assert_int_equal(store_sandbox_insert(f->store, &theirs, &err), 0);

    struct sb_sandbox_rec *list;
    size_t n;
    /* Default: the live ones (creating, running, paused), newest first. */
    assert_int_equal(store_sandbox_list(f->store, f->org.id, 0, &list, &n, &err), 0);
    assert_int_equal(n, 4);
    const int order[] = {5, 3, 2, 0};
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list[i].id, recs[order[i]].id);
    store_sandbox_list_free(list, n);

    const unsigned stopped = SB_SANDBOX_STATUS_BIT(SB_SANDBOX_STOPPED);
    const unsigned running = SB_SANDBOX_STATUS_BIT(SB_SANDBOX_RUNNING);
    assert_int_equal(store_sandbox_list(f->store, f->org.id, stopped, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, recs[1].id);
    store_sandbox_list_free(list, n);

    assert_int_equal(store_sandbox_list(f->store, f->org.id, running, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, recs[5].id);
    assert_string_equal(list[1].id, recs[0].id);
    store_sandbox_list_free(list, n);

    /* Several statuses at once. */
    const unsigned two = SB_SANDBOX_STATUS_BIT(SB_SANDBOX_PAUSED) | stopped;
    assert_int_equal(store_sandbox_list(f->store, f->org.id, two, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, recs[2].id);
    assert_string_equal(list[1].id, recs[1].id);
    store_sandbox_list_free(list, n);

    /* Every org. */
    assert_int_equal(store_sandbox_list(f->store, NULL, running, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, theirs.id);
    store_sandbox_list_free(list, n);
    assert_int_equal(store_sandbox_list(f->store, NULL, 0, &list, &n, &err), 0);
    assert_int_equal(n, 5);
    store_sandbox_list_free(list, n);

    /* The old rows' error status is listed only when asked for. */
    assert_int_equal(store_sandbox_list(f->store, f->org.id, SB_SANDBOX_STATUS_BIT(SB_SANDBOX_ERROR), &list, &n,
                                        &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, recs[4].id);
    assert_int_equal(list[0].status, SB_SANDBOX_ERROR);
    store_sandbox_list_free(list, n);
    /* A bit that is no status. */
    assert_int_equal(store_sandbox_list(f->store, f->org.id, SB_SANDBOX_STATUS_BIT(SB_SANDBOX_STATUS_COUNT), &list,
                                        &n, &err), -1);
    assert_int_equal(err.status, 400);

    assert_int_equal(store_sandbox_count_live(f->store, f->org.id, &n, &err), 0);
    assert_int_equal(n, 4);    /* 2 running + 1 paused + 1 creating; not stopped or error */
    assert_int_equal(store_sandbox_count_live(f->store, f->other.id, &n, &err), 0);
    assert_int_equal(n, 1);
}

/* A failed create's row goes; stopped rows keep when and why until pruned. */
static void test_sandbox_delete_and_prune(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    struct sb_sandbox_rec creating = sandbox(f->org.id, SB_SANDBOX_CREATING, 1000);
    struct sb_sandbox_rec running = sandbox(f->org.id, SB_SANDBOX_RUNNING, 1001);
    struct sb_sandbox_rec old = sandbox(f->org.id, SB_SANDBOX_RUNNING, 1002);
    struct sb_sandbox_rec recent = sandbox(f->org.id, SB_SANDBOX_RUNNING, 1003);
    assert_int_equal(store_sandbox_insert(f->store, &creating, &err), 0);
    assert_int_equal(store_sandbox_insert(f->store, &running, &err), 0);
    assert_int_equal(store_sandbox_insert(f->store, &old, &err), 0);
    assert_int_equal(store_sandbox_insert(f->store, &recent, &err), 0);

    /* Only a creating row can be deleted. */
    assert_int_equal(store_sandbox_delete_creating(f->store, creating.id, &err), 0);
    assert_int_equal(store_sandbox_delete_creating(f->store, running.id, &err), 0);
    struct sb_sandbox_rec got;
    assert_int_equal(store_sandbox_get(f->store, f->org.id, creating.id, &got, &err), -1);
    assert_int_equal(err.status, 404);
    assert_int_equal(store_sandbox_get(f->store, f->org.id, running.id, &got, &err), 0);
    store_sandbox_rec_clear(&got);

    old.status = SB_SANDBOX_STOPPED;
    old.stopped_at = 5000;
    snprintf(old.stop_reason, sizeof old.stop_reason, "timeout");
    recent.status = SB_SANDBOX_STOPPED;
    recent.stopped_at = 9000;
    snprintf(recent.stop_reason, sizeof recent.stop_reason, "deleted");
    assert_int_equal(store_sandbox_update(f->store, &old, &err), 0);
    assert_int_equal(store_sandbox_update(f->store, &recent, &err), 0);
    assert_int_equal(store_sandbox_get(f->store, f->org.id, old.id, &got, &err), 0);
    assert_int_equal(got.stopped_at, 5000);
    assert_string_equal(got.stop_reason, "timeout");
    store_sandbox_rec_clear(&got);

    size_t pruned = 0;
    assert_int_equal(store_sandbox_prune_stopped(f->store, 6000, &pruned, &err), 0);
    assert_int_equal(pruned, 1);
    assert_int_equal(store_sandbox_get(f->store, f->org.id, old.id, &got, &err), -1);
    assert_int_equal(store_sandbox_get(f->store, f->org.id, recent.id, &got, &err), 0);
    assert_string_equal(got.stop_reason, "deleted");
    store_sandbox_rec_clear(&got);
    assert_int_equal(store_sandbox_get(f->store, f->org.id, running.id, &got, &err), 0);
    store_sandbox_rec_clear(&got);
    store_sandbox_rec_clear(&creating);
    store_sandbox_rec_clear(&running);
    store_sandbox_rec_clear(&old);
    store_sandbox_rec_clear(&recent);
}

/* ---- events ---- */

static void test_events(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    const char *sbx1 = "sbx_aaaaaaaaaaaaaaaaaaaa", *sbx2 = "sbx_bbbbbbbbbbbbbbbbbbbb";
    assert_int_equal(store_event_append(f->store, f->org.id, sbx1, "base", "sandbox.lifecycle.created",
                                        "{\"n\":1}", &err), 0);
    assert_int_equal(store_event_append(f->store, f->org.id, sbx2, "base", "sandbox.lifecycle.created",
                                        NULL, &err), 0);
    assert_int_equal(store_event_append(f->store, f->org.id, sbx1, "base", "sandbox.lifecycle.paused",
                                        "{\"n\":3}", &err), 0);
    assert_int_equal(store_event_append(f->store, f->org.id, sbx1, NULL, "sandbox.lifecycle.killed",
                                        "{\"n\":4}", &err), 0);
    assert_int_equal(store_event_append(f->store, f->other.id, sbx1, "base", "sandbox.lifecycle.created",
                                        NULL, &err), 0);
    assert_int_equal(store_event_append(f->store, f->org.id, sbx1, "base", "", NULL, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(store_event_append(f->store, f->org.id, sbx1, "base", "x", "[not json", &err), -1);
    assert_int_equal(err.status, 400);

    struct sb_event *list;
    size_t n;
    assert_int_equal(store_event_list(f->store, f->org.id, NULL, 0, &list, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(list[0].type, "sandbox.lifecycle.killed");   /* newest first */
    assert_string_equal(list[0].template_id, "");
    assert_string_equal(list[3].data_json, "{\"n\":1}");
    assert_string_equal(list[2].data_json, "{}");
    assert_string_equal(list[2].sandbox_id, sbx2);
    assert_true(sb_id_valid("evt_", list[0].id));
    assert_true(list[0].created_at >= list[3].created_at);
    store_event_list_free(list, n);

    assert_int_equal(store_event_list(f->store, f->org.id, sbx1, 2, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].data_json, "{\"n\":4}");
    assert_string_equal(list[1].data_json, "{\"n\":3}");
    store_event_list_free(list, n);

    assert_int_equal(store_event_list(f->store, f->other.id, NULL, -1, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].org_id, f->other.id);
    store_event_list_free(list, n);
}

static void test_events_default_limit(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    for (int i = 0; i < 120; i++)
        assert_int_equal(store_event_append(f->store, f->org.id, "", "", "t", NULL, &err), 0);
    struct sb_event *list;
    size_t n;
    assert_int_equal(store_event_list(f->store, f->org.id, NULL, 0, &list, &n, &err), 0);
    assert_int_equal(n, 100);
    store_event_list_free(list, n);
    assert_int_equal(store_event_list(f->store, f->org.id, NULL, 500, &list, &n, &err), 0);
    assert_int_equal(n, 120);
    store_event_list_free(list, n);
}

/* ---- concurrency: one connection shared by threads ---- */

struct worker_arg {
    struct fixture *f;
    int failures;
};

static void *append_events(void *p)
{
    struct worker_arg *w = p;
    struct sb_err err;
    for (int i = 0; i < 50; i++) {
        struct sb_event *list;
        size_t n;
        if (store_event_append(w->f->store, w->f->org.id, "", "", "t", NULL, &err) < 0 ||
            store_event_list(w->f->store, w->f->org.id, NULL, 5, &list, &n, &err) < 0)
            w->failures++;
        else
            store_event_list_free(list, n);
    }
    return NULL;
}

static void test_concurrent_use(void **state)
{
    struct fixture *f = *state;
    pthread_t threads[4];
    struct worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct worker_arg){.f = f};
        assert_int_equal(pthread_create(&threads[i], NULL, append_events, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    assert_int_equal(sql_int(f->dir, "SELECT count(*) FROM events"), 200);
}

/* ---- first-start bootstrap (cli/common.c) ---- */

static void test_bootstrap_default(void **state)
{
    struct fixture *f = *state;
    char dir[96];
    snprintf(dir, sizeof dir, "%s/fresh", f->dir);
    struct sb_store *store;
    struct sb_err err = {0};
    assert_int_equal(store_open(dir, &store, &err), 0);
    char key[SB_APIKEY_MAX];
    int created = -1;
    assert_int_equal(store_bootstrap_default(store, key, &created, &err), 0);
    assert_int_equal(created, 1);

    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    struct sb_api_key who;
    assert_int_equal(apikey_parse(key, prefix, hash, &err), 0);
    assert_int_equal(store_key_authenticate(store, prefix, hash, &who, &err), 0);
    assert_string_equal(who.org_name, "default");
    assert_string_equal(who.label, "default");

    assert_int_equal(store_bootstrap_default(store, key, &created, &err), 0);
    assert_int_equal(created, 0);
    assert_string_equal(key, "");
    store_close(store);

    /* The fixture's store already has orgs: nothing is created. */
    assert_int_equal(store_bootstrap_default(f->store, key, &created, &err), 0);
    assert_int_equal(created, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_migrations_fresh_and_reopen),
        T(test_migrations_upgrade_from_first),
        T(test_migrations_refuse_newer_schema),
        T(test_open_creates_data_dir),
        T(test_orgs),
        T(test_keys_insert_authenticate_revoke),
        T(test_keys_same_prefix_candidates),
        T(test_keys_revoke_by_prefix_or_key),
        T(test_keys_list_and_touch),
        T(test_sandbox_status_names),
        T(test_sandbox_insert_get_update),
        T(test_sandbox_insert_rejects_bad_records),
        T(test_sandbox_list_and_count),
        T(test_sandbox_delete_and_prune),
        T(test_events),
        T(test_events_default_limit),
        T(test_concurrent_use),
        T(test_bootstrap_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
