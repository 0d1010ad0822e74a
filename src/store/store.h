/*
 * store.h - the one interface to persistent state: orgs, API keys, sandboxes,
 * lifecycle events (reading them: store/events.c), and webhooks with their
 * delivery outbox (store/webhooks.h).
 *
 * Backed by SQLite in WAL mode at <data-dir>/sandbase.db (store/sqlite.c);
 * numbered migrations (store/migrations/NNN_name.sql, compiled in) are applied
 * on open. One connection guarded by a mutex: every function is safe to call
 * from any thread. Times are milliseconds since the Unix epoch (UTC).
 * Errors: -1 with err filled (404 for "not found", 409 for conflicts, 500 for
 * database failures, with the SQLite message as context).
 * Ownership: out-structs are filled by value; lists are malloc'd arrays the
 * caller frees with free() (and store_sandbox_list_free for sandboxes, which
 * own their JSON strings).
 */
#ifndef SB_STORE_STORE_H
#define SB_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct sb_store;

int store_open(const char *data_dir, struct sb_store **out, struct sb_err *err);
void store_close(struct sb_store *store);
/* The schema version after migrations (the highest applied number). */
int store_schema_version(struct sb_store *store);

/* ---- orgs ---- */
struct sb_org {
    char id[40];        /* "org_" + 20 base32 chars */
    char name[128];
    int64_t created_at;
};
/* 400 unless sb_name_valid(name) (core/id.h); 409 if the name exists. */
int store_org_create(struct sb_store *store, const char *name, struct sb_org *out, struct sb_err *err);
int store_org_get_by_name(struct sb_store *store, const char *name, struct sb_org *out, struct sb_err *err);
int store_org_get(struct sb_store *store, const char *id, struct sb_org *out, struct sb_err *err);
int store_org_list(struct sb_store *store, struct sb_org **out, size_t *count, struct sb_err *err);
int store_org_count(struct sb_store *store, size_t *count, struct sb_err *err);

/* ---- API keys (see core/apikey.h for the key format and hashing) ---- */
struct sb_api_key {
    char id[40];            /* "key_" + 20 base32 chars */
    char org_id[40];
    char org_name[128];
    char prefix[24];        /* "sk-sb-" + first 8 hex chars of the secret: shown, never secret */
    char label[128];
    int64_t created_at;
    int64_t last_used_at;   /* 0 = never */
    int64_t revoked_at;     /* 0 = active */
};
int store_key_insert(struct sb_store *store, const char *org_id, const char *prefix,
                     const unsigned char hash[32], const char *label,
                     struct sb_api_key *out, struct sb_err *err);
/* Finds the active key whose prefix matches and whose hash equals `hash`
 * (compared in constant time). 401 "invalid API key" when none. */
int store_key_authenticate(struct sb_store *store, const char *prefix, const unsigned char hash[32],
                           struct sb_api_key *out, struct sb_err *err);
/* Records use; cheap (writes at most once a minute per key). */
void store_key_touch(struct sb_store *store, const char *key_id, int64_t now_ms);
/* org_id NULL lists every org's keys. */
int store_key_list(struct sb_store *store, const char *org_id, struct sb_api_key **out,
                   size_t *count, struct sb_err *err);
/* Revokes one key, named by a leading part of its prefix ("sk-sb-1a2b"; the
 * whole stored prefix works too) with hash NULL, or, for a whole key, by its
 * exact prefix and the hash apikey_parse gives (compared in constant time).
 * Counting revoked keys too, exactly one key must match: 404 "no API key
 * matches PREFIX" when none, 409 "N API keys match PREFIX: give more
 * characters..." when several, 409 "API key PREFIX is already revoked" when
 * the one match is. out (may be NULL) gets the revoked key's row. */
int store_key_revoke(struct sb_store *store, const char *prefix, const unsigned char *hash,
                     struct sb_api_key *out, struct sb_err *err);

/* ---- sandboxes ---- */
/* Where a sandbox is in its life: creating -> running <-> paused -> stopped.
 * Stored as its name (the TEXT column `status`); sqlite.c alone converts. */
enum sb_sandbox_status {
    SB_SANDBOX_CREATING,
    SB_SANDBOX_RUNNING,
    SB_SANDBOX_PAUSED,
    SB_SANDBOX_STOPPED,
    SB_SANDBOX_ERROR,           /* a failed create of an old version; only in old rows */
    SB_SANDBOX_STATUS_COUNT
};
/* A set of statuses for store_sandbox_list: SB_SANDBOX_STATUS_BIT(a) | ... */
#define SB_SANDBOX_STATUS_BIT(status) (1u << (status))
/* "creating", "running", "paused", "stopped", "error" (the API's words
 * too); "unknown" for a value that is none of them. */
const char *sb_sandbox_status_name(enum sb_sandbox_status status);
/* The status named name: 0 and *out set, or -1 for any other word. */
int sb_sandbox_status_parse(const char *name, enum sb_sandbox_status *out);

struct sb_sandbox_rec {
    char id[32];            /* "sbx_" + 20 base32 chars */
    char org_id[40];
    char template_id[64];
    enum sb_sandbox_status status;
    char *metadata_json;    /* owned: a JSON object as text */
    char *env_json;         /* owned: a JSON object as text */
    int64_t started_at;
    int64_t end_at;         /* while paused: the end as it stood at pause */
    int64_t paused_at;      /* 0 unless paused */
    int cpu_count;
    int memory_mb;
    int disk_mb;
    int64_t updated_at;
    int64_t stopped_at;     /* 0 unless stopped */
    char stop_reason[16];   /* why it stopped: deleted | timeout | lost; "" unless stopped */
    char *network_json;     /* owned: network settings (runtime/netpolicy.h), "" = loopback only; set at insert,
                               rewritten by an update of its rules (NULL at an update: kept) */
    /* set at insert, never updated: */
    char *e2b_json;         /* owned: an E2B create's own settings (src/e2b/), "" for SandBase's */
    char envd_token[72];    /* a secure sandbox's envd access token; "" = none */
    int pause_on_timeout;   /* its timeout pauses it (E2B's autoPause) instead of killing it */
};
void store_sandbox_rec_clear(struct sb_sandbox_rec *rec);   /* frees the owned strings */
int store_sandbox_insert(struct sb_store *store, const struct sb_sandbox_rec *rec, struct sb_err *err);
/* Writes status, end_at, paused_at, stopped_at, stop_reason (and updated_at = now). */
int store_sandbox_update(struct sb_store *store, const struct sb_sandbox_rec *rec, struct sb_err *err);
/* Inserts (insert=1) or updates rec and, when event_type is set, appends
 * that lifecycle event for it in the same transaction: both or neither. */
int store_sandbox_write(struct sb_store *store, const struct sb_sandbox_rec *rec, int insert,
                        const char *event_type, const char *event_data_json, struct sb_err *err);
/* org_id NULL = any org (internal use). 404 "sandbox not found" otherwise. */
int store_sandbox_get(struct sb_store *store, const char *org_id, const char *id,
                      struct sb_sandbox_rec *out, struct sb_err *err);
/* Newest first, with any of the statuses in the set `statuses` (bits of
 * SB_SANDBOX_STATUS_BIT; 0: the live ones, creating, running and paused).
 * org_id NULL = every org. 400 for a bit that is no status. */
int store_sandbox_list(struct sb_store *store, const char *org_id, unsigned statuses,
                       struct sb_sandbox_rec **out, size_t *count, struct sb_err *err);
/* A create that failed: its `creating` row goes (it never was a sandbox). */
int store_sandbox_delete_creating(struct sb_store *store, const char *id, struct sb_err *err);
/* Forgets stopped sandboxes that stopped before before_ms (retention). */
int store_sandbox_prune_stopped(struct sb_store *store, int64_t before_ms, size_t *pruned,
                                struct sb_err *err);
void store_sandbox_list_free(struct sb_sandbox_rec *list, size_t count);
/* Live sandboxes of an org for the per-org cap: running, paused, and
 * creating (a `creating` row reserves its slot while the sandbox is built). */
int store_sandbox_count_live(struct sb_store *store, const char *org_id, size_t *count, struct sb_err *err);

/* ---- lifecycle events ---- */
struct sb_event {
    int64_t seq;            /* the store's order of events: larger is newer */
    char id[32];            /* "evt_" + 20 base32 chars */
    char org_id[40];
    char sandbox_id[32];
    char template_id[64];
    char type[48];          /* "sandbox.lifecycle.created" ... */
    char *data_json;        /* owned: JSON object text, "{}" when none */
    int64_t created_at;
};
/* Appends an event (and its webhook deliveries) in one transaction. */
int store_event_append(struct sb_store *store, const char *org_id, const char *sandbox_id,
                       const char *template_id, const char *type, const char *data_json,
                       struct sb_err *err);
/* Called after every committed event (store_sandbox_write with an event,
 * store_event_append), on the thread that wrote it, without the store's
 * lock; ev and its data_json are borrowed for the call. It must not block
 * (the loop thread writes events too). Set once, before other threads use
 * the store; NULL removes it. */
typedef void (*store_event_listener_fn)(void *arg, const struct sb_event *ev);
void store_set_event_listener(struct sb_store *store, store_event_listener_fn fn, void *arg);

/* What store_event_query returns: one org's events, newest first (by seq). */
struct sb_event_query {
    const char *org_id;     /* required */
    const char *sandbox_id; /* NULL = the whole org */
    const char *types;      /* ",type1,type2," (each between commas), NULL = every type */
    int64_t since_ms;       /* only events created at or after this time (0: no bound) */
    int64_t before_seq;     /* only events older than this seq (0: from the newest) */
    int limit;              /* <= 0 means 100 */
};
int store_event_query(struct sb_store *store, const struct sb_event_query *q, struct sb_event **out,
                      size_t *count, struct sb_err *err);
/* Newest first; sandbox_id NULL = the whole org; limit <= 0 means 100. */
int store_event_list(struct sb_store *store, const char *org_id, const char *sandbox_id, int limit,
                     struct sb_event **out, size_t *count, struct sb_err *err);
/* An org's events after after_seq, oldest first, at most limit (live
 * streams resuming from the last event a client saw). */
int store_event_list_after(struct sb_store *store, const char *org_id, int64_t after_seq, int limit,
                           struct sb_event **out, size_t *count, struct sb_err *err);
/* The seq of the org's event id: 404 "event not found" when there is none
 * (another org's, or pruned). */
int store_event_seq(struct sb_store *store, const char *org_id, const char *id, int64_t *seq,
                    struct sb_err *err);
/* Forgets events created before before_ms (retention), with their webhook
 * deliveries. */
int store_event_prune(struct sb_store *store, int64_t before_ms, size_t *pruned, struct sb_err *err);
void store_event_list_free(struct sb_event *list, size_t count);

#endif
