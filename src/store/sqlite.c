/*
 * sqlite.c - store.h on SQLite: one WAL-mode connection to
 * <data-dir>/sandbase.db, guarded by one mutex, with every statement prepared
 * once and cached for the life of the store.
 *
 * Owns the connection, its cached statements and the schema migrations
 * (store/migrations/NNN_name.sql, compiled in; each applied in its own
 * transaction together with the PRAGMA user_version bump, so a crash mid-way
 * leaves the previous version intact). Must never print, never hold the lock
 * across a call back into the caller, and never store or compare an API key
 * secret: only its hash, compared in constant time.
 */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/id.h"
#include "store/migrations.h"
#include "store/store_internal.h"

/* ---- statements ----
 * Every query the store runs, prepared on first use. Queries with optional
 * filters have one entry per combination, so each keeps a plan that can use
 * its index instead of a catch-all "?1 IS NULL OR ..." clause. */
enum stmt_id {
    ST_ORG_INSERT,
    ST_ORG_BY_NAME,
    ST_ORG_BY_ID,
    ST_ORG_LIST,
    ST_ORG_COUNT,
    ST_KEY_INSERT,
    ST_KEY_BY_PREFIX,
    ST_KEY_TOUCH,
    ST_KEY_LIST_ALL,
    ST_KEY_LIST_ORG,
    ST_KEY_MATCH_PREFIX,
    ST_KEY_REVOKE,
    ST_SBX_INSERT,
    ST_SBX_UPDATE,
    ST_SBX_GET_ANY,
    ST_SBX_GET_ORG,
    ST_SBX_LIST_STATUS,         /* + 1: org given */
    ST_SBX_LIST_ORG_STATUS,
    ST_SBX_COUNT_LIVE,
    ST_SBX_DELETE,
    ST_SBX_PRUNE,
    ST_EVT_INSERT,
    ST_COUNT
};

#define KEY_COLS "k.id, k.org_id, o.name, k.prefix, k.label, k.created_at, k.last_used_at, k.revoked_at"
#define KEY_FROM " FROM api_keys k JOIN orgs o ON o.id = k.org_id"
#define SBX_COLS "id, org_id, template_id, status, metadata_json, env_json, started_at, end_at, " \
                 "paused_at, cpu_count, memory_mb, disk_mb, updated_at, stopped_at, stop_reason, network_json, " \
                 "e2b_json, envd_token, on_timeout"
#define SBX_SELECT "SELECT " SBX_COLS " FROM sandboxes"
#define SBX_ORDER " ORDER BY started_at DESC, rowid DESC"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_ORG_INSERT] = "INSERT INTO orgs (id, name, created_at) VALUES (?1, ?2, ?3)",
    [ST_ORG_BY_NAME] = "SELECT id, name, created_at FROM orgs WHERE name = ?1",
    [ST_ORG_BY_ID] = "SELECT id, name, created_at FROM orgs WHERE id = ?1",
    [ST_ORG_LIST] = "SELECT id, name, created_at FROM orgs ORDER BY created_at, rowid",
    [ST_ORG_COUNT] = "SELECT count(*) FROM orgs",
    [ST_KEY_INSERT] = "INSERT INTO api_keys (id, org_id, prefix, hash, label, created_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_KEY_BY_PREFIX] = "SELECT " KEY_COLS ", k.hash" KEY_FROM " WHERE k.prefix = ?1",
    [ST_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND last_used_at < ?2 - 60000",
    [ST_KEY_LIST_ALL] = "SELECT " KEY_COLS KEY_FROM " ORDER BY k.created_at, k.rowid",
    [ST_KEY_LIST_ORG] = "SELECT " KEY_COLS KEY_FROM " WHERE k.org_id = ?1 ORDER BY k.created_at, k.rowid",
    /* A leading part of the prefix: no index, but only `key revoke` asks and
     * an org has a handful of keys. */
    [ST_KEY_MATCH_PREFIX] = "SELECT " KEY_COLS ", k.hash" KEY_FROM
                            " WHERE substr(k.prefix, 1, length(?1)) = ?1 ORDER BY k.created_at, k.rowid",
    [ST_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at = 0",
    [ST_SBX_INSERT] = "INSERT INTO sandboxes (" SBX_COLS ") "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    /* network_json changes with an update of the sandbox's rules; NULL keeps it */
    [ST_SBX_UPDATE] = "UPDATE sandboxes SET status = ?2, end_at = ?3, paused_at = ?4, updated_at = ?5, "
                      "stopped_at = ?6, stop_reason = ?7, network_json = coalesce(?8, network_json) WHERE id = ?1",
    [ST_SBX_GET_ANY] = SBX_SELECT " WHERE id = ?1",
    [ST_SBX_GET_ORG] = SBX_SELECT " WHERE id = ?1 AND org_id = ?2",
    /* ?2 is a set of statuses written ",running,paused," */
    [ST_SBX_LIST_STATUS] = SBX_SELECT " WHERE instr(?2, ',' || status || ',') > 0" SBX_ORDER,
    [ST_SBX_LIST_ORG_STATUS] = SBX_SELECT " WHERE org_id = ?1 AND instr(?2, ',' || status || ',') > 0" SBX_ORDER,
    [ST_SBX_COUNT_LIVE] = "SELECT count(*) FROM sandboxes WHERE org_id = ?1 AND status IN ('creating', 'running', 'paused')",
    [ST_SBX_DELETE] = "DELETE FROM sandboxes WHERE id = ?1 AND status = 'creating'",
    [ST_SBX_PRUNE] = "DELETE FROM sandboxes WHERE status = 'stopped' AND stopped_at < ?1",
    [ST_EVT_INSERT] = "INSERT INTO events (id, org_id, sandbox_id, template_id, type, data_json, created_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
};

/* Ownership: made by store_open, freed (with every statement) by store_close. */
struct sb_store {
    sqlite3 *db;
    pthread_mutex_t lock;
    int version;
    sqlite3_stmt *stmts[ST_COUNT];
    sqlite3_stmt *extra[SX_COUNT];      /* the other store files' statements */
    store_event_listener_fn listener;   /* set before any other thread uses the store */
    void *listener_arg;
};

/* ---- small helpers ---- */

int db_error(struct sb_store *s, struct sb_err *err, const char *context)
{
    return sb_err_set(err, 500, "%s: %s", context, sqlite3_errmsg(s->db));
}

struct sb_store *store_lock(struct sb_store *s)
{
    pthread_mutex_lock(&s->lock);
    return s;
}

void store_unlock(struct sb_store **s)
{
    pthread_mutex_unlock(&(*s)->lock);
}

void stmt_release(sqlite3_stmt **st)
{
    if (*st) {
        sqlite3_reset(*st);
        sqlite3_clear_bindings(*st);
    }
}


/* The cached statement for id, prepared on first use; NULL with err set. */
static sqlite3_stmt *stmt_get(struct sb_store *s, enum stmt_id id, struct sb_err *err)
{
    if (!s->stmts[id] &&
        sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id], NULL) != SQLITE_OK) {
        db_error(s, err, "preparing a query");
        s->stmts[id] = NULL;
    }
    return s->stmts[id];
}

sqlite3 *store_db(struct sb_store *s)
{
    return s->db;
}

sqlite3_stmt *store_stmt_extra(struct sb_store *s, enum store_extra_stmt id, const char *sql,
                               struct sb_err *err)
{
    if (!s->extra[id] &&
        sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->extra[id], NULL) != SQLITE_OK) {
        db_error(s, err, "preparing a query");
        s->extra[id] = NULL;
    }
    return s->extra[id];
}

void store_set_event_listener(struct sb_store *store, store_event_listener_fn fn, void *arg)
{
    store->listener = fn;
    store->listener_arg = arg;
}

void store_notify_event(struct sb_store *s, const struct sb_event *ev)
{
    if (s->listener)
        s->listener(s->listener_arg, ev);
}

/* Binds text, or SQL NULL when text is NULL. */
void bind_text(sqlite3_stmt *st, int idx, const char *text)
{
    if (text)
        sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, idx);
}

void column_copy(sqlite3_stmt *st, int col, char *dst, size_t len)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    snprintf(dst, len, "%s", text ? (const char *)text : "");
}

/* A malloc'd copy of a text column (caller frees), or NULL on OOM. */
char *column_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    return strdup(text ? (const char *)text : "");
}

/* 400 unless 0 < strlen(value) < size (or value may be empty when allow_empty). */
int check_text(const char *value, size_t size, int allow_empty, const char *field, struct sb_err *err)
{
    size_t len = value ? strlen(value) : 0;
    if (len == 0 && !allow_empty)
        return sb_err_set(err, 400, "%s must not be empty", field);
    if (len >= size)
        return sb_err_set(err, 400, "%s is too long (at most %zu characters)", field, size - 1);
    return 0;
}

/* Runs a write statement to completion; 0 or -1 with err from the database. */
int step_done(struct sb_store *s, sqlite3_stmt *st, const char *context, struct sb_err *err)
{
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, context);
    return 0;
}

/* Reads a single count(*) row. */
int step_count(struct sb_store *s, sqlite3_stmt *st, size_t *count, struct sb_err *err)
{
    if (sqlite3_step(st) != SQLITE_ROW)
        return db_error(s, err, "counting rows");
    *count = (size_t)sqlite3_column_int64(st, 0);
    return 0;
}

/* Steps st to the end, appending one element per row to a growing malloc'd
 * array (ownership passes to the caller on success). `read` fills an element
 * from the current row (0 or -1 on OOM); `clear` frees what it owns. */

int collect_rows(struct sb_store *s, sqlite3_stmt *st, size_t elem_size, row_reader read,
                        elem_clear clear, void **out, size_t *count, struct sb_err *err)
{
    char *items = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t new_cap = cap ? cap * 2 : 16;
            char *grown = realloc(items, new_cap * elem_size);
            if (!grown)
                goto oom;
            items = grown;
            cap = new_cap;
        }
        memset(items + n * elem_size, 0, elem_size);
        if (read(st, items + n * elem_size) < 0) {
            n++;    /* the partly read element owns what it read */
            goto oom;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        db_error(s, err, "reading rows");
        goto fail;
    }
    *out = items;
    *count = n;
    return 0;
oom:
    sb_err_set(err, 500, "out of memory reading rows");
fail:
    for (size_t i = 0; clear && i < n; i++)
        clear(items + i * elem_size);
    free(items);
    *out = NULL;
    *count = 0;
    return -1;
}

/* ---- opening, migrations ---- */


static int read_user_version(struct sb_store *s, int *version, struct sb_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "reading the schema version");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_error(s, err, "reading the schema version");
}

/* Applies one migration and bumps user_version in the same transaction. */
static int apply_migration(struct sb_store *s, const struct sb_migration *m, struct sb_err *err)
{
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA user_version = %d", m->version);
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, "starting a migration");
    if (sqlite3_exec(s->db, m->sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, bump, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_error(s, err, "migration");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return sb_err_prefix(err, "%s", m->name);
    }
    return 0;
}

static int migrate(struct sb_store *s, struct sb_err *err)
{
    if (read_user_version(s, &s->version, err) < 0)
        return -1;
    int newest = sb_migration_count ? sb_migrations[sb_migration_count - 1].version : 0;
    if (s->version > newest)
        return sb_err_set(err, 500,
                          "database schema version %d is newer than this sandbase knows (%d): upgrade sandbase",
                          s->version, newest);
    for (size_t i = 0; i < sb_migration_count; i++) {
        if (sb_migrations[i].version <= s->version)
            continue;
        if (apply_migration(s, &sb_migrations[i], err) < 0)
            return -1;
        s->version = sb_migrations[i].version;
    }
    return 0;
}

/* WAL keeps readers off the writer's back; NORMAL is durable across process
 * crashes in WAL mode (only an OS crash can lose the last commits). */
static int configure(struct sb_store *s, struct sb_err *err)
{
    if (sqlite3_exec(s->db, "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; "
                            "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, "configuring the database");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "enabling WAL");
    const unsigned char *mode = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int wal = mode && strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal)
        return db_error(s, err, "enabling WAL");
    return 0;
}

int store_open(const char *data_dir, struct sb_store **out, struct sb_err *err)
{
    *out = NULL;
    if (!data_dir || sb_mkdir_p(data_dir, 0700, err) < 0)
        return data_dir ? -1 : sb_err_set(err, 400, "no data dir given");
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/sandbase.db", data_dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return sb_err_set(err, 400, "data dir path is too long");
    struct sb_store *s = calloc(1, sizeof *s);
    if (!s)
        return sb_err_set(err, 500, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    /* NOMUTEX: s->lock already serialises every use of the connection. */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        if (s->db)
            db_error(s, err, "opening the database");
        else
            sb_err_set(err, 500, "out of memory opening the database");
    } else if (configure(s, err) == 0 && migrate(s, err) == 0) {
        *out = s;
        return 0;
    }
    sb_err_prefix(err, "%s", path);
    store_close(s);
    return -1;
}

void store_close(struct sb_store *store)
{
    if (!store)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(store->stmts[i]);
    for (int i = 0; i < SX_COUNT; i++)
        sqlite3_finalize(store->extra[i]);
    sqlite3_close(store->db);
    pthread_mutex_destroy(&store->lock);
    free(store);
}

int store_schema_version(struct sb_store *store)
{
    return store->version;   /* fixed once store_open returns */
}

/* ---- orgs ---- */

static int read_org(sqlite3_stmt *st, void *elem)
{
    struct sb_org *org = elem;
    column_copy(st, 0, org->id, sizeof org->id);
    column_copy(st, 1, org->name, sizeof org->name);
    org->created_at = sqlite3_column_int64(st, 2);
    return 0;
}

int store_org_create(struct sb_store *store, const char *name, struct sb_org *out, struct sb_err *err)
{
    if (!sb_name_valid(name))
        return sb_err_set(err, 400, "invalid org name '%s': use " SB_NAME_RULE, name ? name : "");
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, ST_ORG_INSERT, err);
    if (!st)
        return -1;
    struct sb_org org = {.created_at = sb_wall_ms()};
    sb_id_new("org_", org.id, sizeof org.id);
    snprintf(org.name, sizeof org.name, "%s", name);
    bind_text(st, 1, org.id);
    bind_text(st, 2, org.name);
    sqlite3_bind_int64(st, 3, org.created_at);
    if (sqlite3_step(st) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(store->db) == SQLITE_CONSTRAINT_UNIQUE)
            return sb_err_set(err, 409, "org already exists: %s", name);
        return db_error(store, err, "creating org");
    }
    if (out)
        *out = org;
    return 0;
}

/* Looks an org up by the statement's single key (name or id). */
static int org_get(struct sb_store *store, enum stmt_id id, const char *key, struct sb_org *out,
                   struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, id, err);
    if (!st)
        return -1;
    bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return sb_err_set(err, 404, "org not found: %s", key ? key : "(none)");
    if (rc != SQLITE_ROW)
        return db_error(store, err, "reading org");
    return out ? read_org(st, out) : 0;    /* out NULL: an existence check */
}

int store_org_get_by_name(struct sb_store *store, const char *name, struct sb_org *out, struct sb_err *err)
{
    return org_get(store, ST_ORG_BY_NAME, name, out, err);
}

int store_org_get(struct sb_store *store, const char *id, struct sb_org *out, struct sb_err *err)
{
    return org_get(store, ST_ORG_BY_ID, id, out, err);
}

int store_org_list(struct sb_store *store, struct sb_org **out, size_t *count, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, ST_ORG_LIST, err);
    if (!st)
        return -1;
    void *rows;
    int rc = collect_rows(store, st, sizeof **out, read_org, NULL, &rows, count, err);
    *out = rows;
    return rc;
}

int store_org_count(struct sb_store *store, size_t *count, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, ST_ORG_COUNT, err);
    if (!st)
        return -1;
    return step_count(store, st, count, err);
}

/* ---- API keys ---- */

static int read_key(sqlite3_stmt *st, void *elem)
{
    struct sb_api_key *key = elem;
    column_copy(st, 0, key->id, sizeof key->id);
    column_copy(st, 1, key->org_id, sizeof key->org_id);
    column_copy(st, 2, key->org_name, sizeof key->org_name);
    column_copy(st, 3, key->prefix, sizeof key->prefix);
    column_copy(st, 4, key->label, sizeof key->label);
    key->created_at = sqlite3_column_int64(st, 5);
    key->last_used_at = sqlite3_column_int64(st, 6);
    key->revoked_at = sqlite3_column_int64(st, 7);
    return 0;
}

/* Inserts the key row described by key (id, created_at) and the arguments.
 * The caller holds the lock. */
static int key_insert_locked(struct sb_store *store, const char *org_id, const char *prefix,
                             const unsigned char hash[32], const char *label, struct sb_api_key *key,
                             struct sb_err *err)
{
    STMT(st) = stmt_get(store, ST_KEY_INSERT, err);
    if (!st)
        return -1;
    bind_text(st, 1, key->id);
    bind_text(st, 2, org_id);
    bind_text(st, 3, prefix);
    sqlite3_bind_blob(st, 4, hash, 32, SQLITE_STATIC);
    bind_text(st, 5, label ? label : "");
    sqlite3_bind_int64(st, 6, key->created_at);
    if (sqlite3_step(st) == SQLITE_DONE)
        return 0;
    switch (sqlite3_extended_errcode(store->db)) {
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return sb_err_set(err, 404, "org not found: %s", org_id);
    case SQLITE_CONSTRAINT_UNIQUE:
        return sb_err_set(err, 409, "API key already exists: %s", prefix);
    default:
        return db_error(store, err, "creating API key");
    }
}

int store_key_insert(struct sb_store *store, const char *org_id, const char *prefix,
                     const unsigned char hash[32], const char *label,
                     struct sb_api_key *out, struct sb_err *err)
{
    struct sb_api_key key = {.created_at = sb_wall_ms()};
    if (check_text(org_id, sizeof key.org_id, 0, "org id", err) < 0 ||
        check_text(prefix, sizeof key.prefix, 0, "key prefix", err) < 0 ||
        check_text(label, sizeof key.label, 1, "key label", err) < 0)
        return -1;
    sb_id_new("key_", key.id, sizeof key.id);
    STORE_LOCKED(store);
    if (key_insert_locked(store, org_id, prefix, hash, label, &key, err) < 0)
        return -1;
    if (out) {
        STMT(st) = stmt_get(store, ST_ORG_BY_ID, err);
        if (!st)
            return -1;
        bind_text(st, 1, org_id);
        if (sqlite3_step(st) == SQLITE_ROW)
            column_copy(st, 1, key.org_name, sizeof key.org_name);
        snprintf(key.org_id, sizeof key.org_id, "%s", org_id);
        snprintf(key.prefix, sizeof key.prefix, "%s", prefix);
        snprintf(key.label, sizeof key.label, "%s", label ? label : "");
        *out = key;
    }
    return 0;
}

int store_key_authenticate(struct sb_store *store, const char *prefix, const unsigned char hash[32],
                           struct sb_api_key *out, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, ST_KEY_BY_PREFIX, err);
    if (!st)
        return -1;
    bind_text(st, 1, prefix);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *stored = sqlite3_column_blob(st, 8);
        if (sqlite3_column_int64(st, 7) != 0 || sqlite3_column_bytes(st, 8) != 32)
            continue;   /* revoked (or not a hash at all) */
        if (sodium_memcmp(stored, hash, 32) == 0) {
            if (out)
                read_key(st, out);
            return 0;
        }
    }
    if (rc != SQLITE_DONE)
        return db_error(store, err, "looking up API key");
    return sb_err_set(err, 401, "invalid API key");
}

void store_key_touch(struct sb_store *store, const char *key_id, int64_t now_ms)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, ST_KEY_TOUCH, NULL);
    if (!st)
        return;
    bind_text(st, 1, key_id);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_step(st);   /* best effort: a lost touch only makes last_used_at stale */
}

int store_key_list(struct sb_store *store, const char *org_id, struct sb_api_key **out,
                   size_t *count, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, org_id ? ST_KEY_LIST_ORG : ST_KEY_LIST_ALL, err);
    if (!st)
        return -1;
    if (org_id)
        bind_text(st, 1, org_id);
    void *rows;
    int rc = collect_rows(store, st, sizeof **out, read_key, NULL, &rows, count, err);
    *out = rows;
    return rc;
}

/* The keys store_key_revoke means: every key whose prefix starts with
 * `prefix`, or with `hash`, the one key with exactly that prefix and hash.
 * Fills *match with the first, counts them all. The caller holds the lock. */
static int key_match_locked(struct sb_store *store, const char *prefix, const unsigned char *hash,
                            struct sb_api_key *match, size_t *count, struct sb_err *err)
{
    STMT(st) = stmt_get(store, ST_KEY_MATCH_PREFIX, err);
    if (!st)
        return -1;
    bind_text(st, 1, prefix);
    *count = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (hash) {
            const unsigned char *stored_prefix = sqlite3_column_text(st, 3);
            if (!stored_prefix || strcmp((const char *)stored_prefix, prefix) != 0 ||
                sqlite3_column_bytes(st, 8) != 32 || sodium_memcmp(sqlite3_column_blob(st, 8), hash, 32) != 0)
                continue;
        }
        if ((*count)++ == 0)
            read_key(st, match);
    }
    if (rc != SQLITE_DONE)
        return db_error(store, err, "looking up API key");
    return 0;
}

int store_key_revoke(struct sb_store *store, const char *prefix, const unsigned char *hash,
                     struct sb_api_key *out, struct sb_err *err)
{
    struct sb_api_key key;
    size_t count;
    if (check_text(prefix, sizeof key.prefix, 0, "key prefix", err) < 0)
        return -1;
    STORE_LOCKED(store);
    if (key_match_locked(store, prefix, hash, &key, &count, err) < 0)
        return -1;
    if (count == 0)
        return sb_err_set(err, 404, hash ? "no API key matches the key given (prefix %s)" : "no API key matches %s",
                          prefix);
    if (count > 1)
        return sb_err_set(err, 409, "%zu API keys match %s: give more characters of the key "
                                    "(`sandbase key list` shows their prefixes) or the whole key",
                          count, prefix);
    if (key.revoked_at != 0)
        return sb_err_set(err, 409, "API key %s is already revoked", key.prefix);
    STMT(st) = stmt_get(store, ST_KEY_REVOKE, err);
    if (!st)
        return -1;
    int64_t now = sb_wall_ms();
    bind_text(st, 1, key.id);
    sqlite3_bind_int64(st, 2, now);
    if (step_done(store, st, "revoking API key", err) < 0)
        return -1;
    if (sqlite3_changes(store->db) == 0)    /* another process revoked it since the lookup */
        return sb_err_set(err, 409, "API key %s is already revoked", key.prefix);
    key.revoked_at = now;
    if (out)
        *out = key;
    return 0;
}

/* ---- sandboxes ---- */

/* The one table of status names: what the `status` column holds and what
 * the API shows. The schema's CHECK constraint and the SQL of the count,
 * delete and prune statements above spell the same words. */
static const char *const status_names[SB_SANDBOX_STATUS_COUNT] = {
    [SB_SANDBOX_CREATING] = "creating",
    [SB_SANDBOX_RUNNING] = "running",
    [SB_SANDBOX_PAUSED] = "paused",
    [SB_SANDBOX_STOPPED] = "stopped",
    [SB_SANDBOX_ERROR] = "error",
};

const char *sb_sandbox_status_name(enum sb_sandbox_status status)
{
    return (unsigned)status < SB_SANDBOX_STATUS_COUNT ? status_names[status] : "unknown";
}

int sb_sandbox_status_parse(const char *name, enum sb_sandbox_status *out)
{
    for (unsigned i = 0; name && i < SB_SANDBOX_STATUS_COUNT; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (enum sb_sandbox_status)i;
            return 0;
        }
    }
    return -1;
}

void store_sandbox_rec_clear(struct sb_sandbox_rec *rec)
{
    if (!rec)
        return;
    free(rec->metadata_json);
    free(rec->env_json);
    free(rec->network_json);
    free(rec->e2b_json);
    rec->metadata_json = NULL;
    rec->env_json = NULL;
    rec->network_json = NULL;
    rec->e2b_json = NULL;
}

static void sandbox_elem_clear(void *elem)
{
    store_sandbox_rec_clear(elem);
}

static int read_sandbox(sqlite3_stmt *st, void *elem)
{
    struct sb_sandbox_rec *rec = elem;
    column_copy(st, 0, rec->id, sizeof rec->id);
    column_copy(st, 1, rec->org_id, sizeof rec->org_id);
    column_copy(st, 2, rec->template_id, sizeof rec->template_id);
    /* The CHECK constraint admits only the five names; a row with any other
     * (none can be written) reads as error: not live, and GET hides it. */
    if (sb_sandbox_status_parse((const char *)sqlite3_column_text(st, 3), &rec->status) < 0)
        rec->status = SB_SANDBOX_ERROR;
    rec->metadata_json = column_dup(st, 4);
    rec->env_json = column_dup(st, 5);
    rec->started_at = sqlite3_column_int64(st, 6);
    rec->end_at = sqlite3_column_int64(st, 7);
    rec->paused_at = sqlite3_column_int64(st, 8);
    rec->cpu_count = sqlite3_column_int(st, 9);
    rec->memory_mb = sqlite3_column_int(st, 10);
    rec->disk_mb = sqlite3_column_int(st, 11);
    rec->updated_at = sqlite3_column_int64(st, 12);
    rec->stopped_at = sqlite3_column_int64(st, 13);
    column_copy(st, 14, rec->stop_reason, sizeof rec->stop_reason);
    rec->network_json = column_dup(st, 15);
    rec->e2b_json = column_dup(st, 16);
    column_copy(st, 17, rec->envd_token, sizeof rec->envd_token);
    const char *on_timeout = (const char *)sqlite3_column_text(st, 18);
    rec->pause_on_timeout = on_timeout && strcmp(on_timeout, "pause") == 0;
    return rec->metadata_json && rec->env_json && rec->network_json && rec->e2b_json ? 0 : -1;
}

/* Maps a failed sandbox write to an error the caller can act on. */
static int sandbox_write_error(struct sb_store *store, const struct sb_sandbox_rec *rec, struct sb_err *err)
{
    switch (sqlite3_extended_errcode(store->db)) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        return sb_err_set(err, 409, "sandbox already exists: %s", rec->id);
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return sb_err_set(err, 404, "org not found: %s", rec->org_id);
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        return sb_err_set(err, 400, "invalid sandbox record %s (status '%s', metadata and env must be JSON): %s",
                          rec->id, sb_sandbox_status_name(rec->status), sqlite3_errmsg(store->db));
    default:
        return db_error(store, err, "writing sandbox");
    }
}

/* The writes below take the store's lock themselves (public) or expect the
 * caller to hold it (_locked), so store_sandbox_write can group them. */
static int sandbox_insert_locked(struct sb_store *store, const struct sb_sandbox_rec *rec,
                                 struct sb_err *err)
{
    STMT(st) = stmt_get(store, ST_SBX_INSERT, err);
    if (!st)
        return -1;
    bind_text(st, 1, rec->id);
    bind_text(st, 2, rec->org_id);
    bind_text(st, 3, rec->template_id);
    bind_text(st, 4, sb_sandbox_status_name(rec->status));   /* "unknown" fails the CHECK */
    bind_text(st, 5, rec->metadata_json ? rec->metadata_json : "{}");
    bind_text(st, 6, rec->env_json ? rec->env_json : "{}");
    sqlite3_bind_int64(st, 7, rec->started_at);
    sqlite3_bind_int64(st, 8, rec->end_at);
    sqlite3_bind_int64(st, 9, rec->paused_at);
    sqlite3_bind_int(st, 10, rec->cpu_count);
    sqlite3_bind_int(st, 11, rec->memory_mb);
    sqlite3_bind_int(st, 12, rec->disk_mb);
    sqlite3_bind_int64(st, 13, sb_wall_ms());
    sqlite3_bind_int64(st, 14, rec->stopped_at);
    bind_text(st, 15, rec->stop_reason);
    bind_text(st, 16, rec->network_json ? rec->network_json : "");
    bind_text(st, 17, rec->e2b_json ? rec->e2b_json : "");
    bind_text(st, 18, rec->envd_token);
    bind_text(st, 19, rec->pause_on_timeout ? "pause" : "kill");
    if (sqlite3_step(st) != SQLITE_DONE)
        return sandbox_write_error(store, rec, err);
    return 0;
}

int store_sandbox_insert(struct sb_store *store, const struct sb_sandbox_rec *rec, struct sb_err *err)
{
    STORE_LOCKED(store);
    return sandbox_insert_locked(store, rec, err);
}

static int sandbox_update_locked(struct sb_store *store, const struct sb_sandbox_rec *rec,
                                 struct sb_err *err)
{
    STMT(st) = stmt_get(store, ST_SBX_UPDATE, err);
    if (!st)
        return -1;
    bind_text(st, 1, rec->id);
    bind_text(st, 2, sb_sandbox_status_name(rec->status));
    sqlite3_bind_int64(st, 3, rec->end_at);
    sqlite3_bind_int64(st, 4, rec->paused_at);
    sqlite3_bind_int64(st, 5, sb_wall_ms());
    sqlite3_bind_int64(st, 6, rec->stopped_at);
    bind_text(st, 7, rec->stop_reason);
    if (rec->network_json)
        bind_text(st, 8, rec->network_json);
    else
        sqlite3_bind_null(st, 8);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sandbox_write_error(store, rec, err);
    if (sqlite3_changes(store->db) == 0)
        return sb_err_set(err, 404, "sandbox not found");
    return 0;
}

int store_sandbox_update(struct sb_store *store, const struct sb_sandbox_rec *rec, struct sb_err *err)
{
    STORE_LOCKED(store);
    return sandbox_update_locked(store, rec, err);
}

static int event_append_locked(struct sb_store *store, struct sb_event *ev, struct sb_err *err);

/* The row and its event (with the event's webhook deliveries) in one
 * transaction; *ev is filled for the listener, called after the lock. */
static int sandbox_write_locked(struct sb_store *store, const struct sb_sandbox_rec *rec, int insert,
                                struct sb_event *ev, struct sb_err *err)
{
    if (!ev)
        return insert ? sandbox_insert_locked(store, rec, err) : sandbox_update_locked(store, rec, err);
    if (sqlite3_exec(store->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(store, err, "starting a transaction");
    int rc = insert ? sandbox_insert_locked(store, rec, err) : sandbox_update_locked(store, rec, err);
    if (rc == 0)
        rc = event_append_locked(store, ev, err);
    if (rc == 0 && sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_error(store, err, "committing a sandbox change");
    if (rc < 0)
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int store_sandbox_write(struct sb_store *store, const struct sb_sandbox_rec *rec, int insert,
                        const char *event_type, const char *event_data_json, struct sb_err *err)
{
    struct sb_event ev = {0};
    snprintf(ev.org_id, sizeof ev.org_id, "%s", rec->org_id);
    snprintf(ev.sandbox_id, sizeof ev.sandbox_id, "%s", rec->id);
    snprintf(ev.template_id, sizeof ev.template_id, "%s", rec->template_id);
    if (event_type && check_text(event_type, sizeof ev.type, 0, "event type", err) < 0)
        return -1;
    snprintf(ev.type, sizeof ev.type, "%s", event_type ? event_type : "");
    ev.data_json = (char *)(event_data_json ? event_data_json : "{}");   /* borrowed */
    int rc;
    {
        STORE_LOCKED(store);
        rc = sandbox_write_locked(store, rec, insert, event_type ? &ev : NULL, err);
    }
    if (rc == 0 && event_type)
        store_notify_event(store, &ev);
    return rc;
}

int store_sandbox_get(struct sb_store *store, const char *org_id, const char *id,
                      struct sb_sandbox_rec *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, org_id ? ST_SBX_GET_ORG : ST_SBX_GET_ANY, err);
    if (!st)
        return -1;
    bind_text(st, 1, id);
    if (org_id)
        bind_text(st, 2, org_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return sb_err_set(err, 404, "sandbox not found");
    if (rc != SQLITE_ROW)
        return db_error(store, err, "reading sandbox");
    if (read_sandbox(st, out) < 0) {
        store_sandbox_rec_clear(out);
        return sb_err_set(err, 500, "out of memory reading sandbox");
    }
    return 0;
}

int store_sandbox_list(struct sb_store *store, const char *org_id, unsigned statuses,
                       struct sb_sandbox_rec **out, size_t *count, struct sb_err *err)
{
    if (statuses == 0)
        statuses = SB_SANDBOX_STATUS_BIT(SB_SANDBOX_CREATING) | SB_SANDBOX_STATUS_BIT(SB_SANDBOX_RUNNING) |
                   SB_SANDBOX_STATUS_BIT(SB_SANDBOX_PAUSED);
    if (statuses >> SB_SANDBOX_STATUS_COUNT)
        return sb_err_set(err, 400, "invalid status filter: 0x%x", statuses);
    /* The set as the statement takes it: ",running,paused," */
    char set[64] = ",";
    size_t used = 1;
    for (unsigned i = 0; i < SB_SANDBOX_STATUS_COUNT; i++)
        if (statuses & SB_SANDBOX_STATUS_BIT(i))
            used += (size_t)snprintf(set + used, sizeof set - used, "%s,", status_names[i]);
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, org_id ? ST_SBX_LIST_ORG_STATUS : ST_SBX_LIST_STATUS, err);
    if (!st)
        return -1;
    if (org_id)
        bind_text(st, 1, org_id);
    bind_text(st, 2, set);
    void *rows;
    int rc = collect_rows(store, st, sizeof **out, read_sandbox, sandbox_elem_clear, &rows, count, err);
    *out = rows;
    return rc;
}

int store_sandbox_delete_creating(struct sb_store *store, const char *id, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, ST_SBX_DELETE, err);
    if (!st)
        return -1;
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(store, err, "deleting a failed sandbox");
    return 0;
}

int store_sandbox_prune_stopped(struct sb_store *store, int64_t before_ms, size_t *pruned,
                                struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, ST_SBX_PRUNE, err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, before_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(store, err, "pruning stopped sandboxes");
    *pruned = (size_t)sqlite3_changes(store->db);
    return 0;
}

void store_sandbox_list_free(struct sb_sandbox_rec *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        store_sandbox_rec_clear(&list[i]);
    free(list);
}

int store_sandbox_count_live(struct sb_store *store, const char *org_id, size_t *count, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = stmt_get(store, ST_SBX_COUNT_LIVE, err);
    if (!st)
        return -1;
    bind_text(st, 1, org_id);
    return step_count(store, st, count, err);
}

/* ---- lifecycle events (appending; reading them is events.c) ---- */

int store_event_append(struct sb_store *store, const char *org_id, const char *sandbox_id,
                       const char *template_id, const char *type, const char *data_json,
                       struct sb_err *err)
{
    struct sb_event ev = {0};
    if (check_text(org_id, sizeof ev.org_id, 0, "event org id", err) < 0 ||
        check_text(sandbox_id, sizeof ev.sandbox_id, 1, "event sandbox id", err) < 0 ||
        check_text(template_id, sizeof ev.template_id, 1, "event template id", err) < 0 ||
        check_text(type, sizeof ev.type, 0, "event type", err) < 0)
        return -1;
    snprintf(ev.org_id, sizeof ev.org_id, "%s", org_id);
    snprintf(ev.sandbox_id, sizeof ev.sandbox_id, "%s", sandbox_id ? sandbox_id : "");
    snprintf(ev.template_id, sizeof ev.template_id, "%s", template_id ? template_id : "");
    snprintf(ev.type, sizeof ev.type, "%s", type);
    ev.data_json = (char *)(data_json ? data_json : "{}");   /* borrowed */
    int rc;
    {
        STORE_LOCKED(store);
        if (sqlite3_exec(store->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            return db_error(store, err, "starting a transaction");
        rc = event_append_locked(store, &ev, err);
        if (rc == 0 && sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            rc = db_error(store, err, "committing an event");
        if (rc < 0)
            sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc == 0)
        store_notify_event(store, &ev);
    return rc;
}

/* Inserts ev (its org, sandbox, template, type and borrowed data_json set
 * by the caller, the text fields already checked for length) with a new id,
 * seq and created_at, and its webhook deliveries. Inside the caller's
 * transaction. */
static int event_append_locked(struct sb_store *store, struct sb_event *ev, struct sb_err *err)
{
    ev->created_at = sb_wall_ms();
    sb_id_new("evt_", ev->id, sizeof ev->id);
    STMT(st) = stmt_get(store, ST_EVT_INSERT, err);
    if (!st)
        return -1;
    bind_text(st, 1, ev->id);
    bind_text(st, 2, ev->org_id);
    bind_text(st, 3, ev->sandbox_id);
    bind_text(st, 4, ev->template_id);
    bind_text(st, 5, ev->type);
    bind_text(st, 6, ev->data_json);
    sqlite3_bind_int64(st, 7, ev->created_at);
    if (sqlite3_step(st) != SQLITE_DONE) {
        switch (sqlite3_extended_errcode(store->db)) {
        case SQLITE_CONSTRAINT_FOREIGNKEY:
            return sb_err_set(err, 404, "org not found: %s", ev->org_id);
        case SQLITE_CONSTRAINT_CHECK:
            return sb_err_set(err, 400, "event data must be a JSON object");
        default:
            return db_error(store, err, "appending event");
        }
    }
    ev->seq = sqlite3_last_insert_rowid(store->db);
    return webhook_outbox_append_locked(store, ev, err);
}
