/*
 * store_internal.h - what the files of src/store/ share: the connection's
 * lock, the statement caches and the row helpers of sqlite.c. Never included
 * outside src/store/; the public interface is store.h (and webhooks.h).
 *
 * sqlite.c owns the connection and its statement table; the other store
 * files (events.c, webhooks.c) keep their SQL beside their code and have it
 * prepared once per store in one of the STORE_EXTRA slots below.
 */
#ifndef SB_STORE_STORE_INTERNAL_H
#define SB_STORE_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

/* Statements of the store files other than sqlite.c, one slot each. */
enum store_extra_stmt {
    SX_EVT_QUERY_ORG,           /* events.c */
    SX_EVT_QUERY_SANDBOX,
    SX_EVT_AFTER,
    SX_EVT_SEQ,
    SX_EVT_PRUNE,
    SX_WH_INSERT,               /* webhooks.c */
    SX_WH_GET,
    SX_WH_LIST,
    SX_WH_UPDATE,
    SX_WH_DELETE,
    SX_OUTBOX_APPEND,
    SX_DLV_LIST,
    SX_DLV_GET,
    SX_DLV_RETRY,
    SX_DLV_DUE,
    SX_DLV_MARK_SENDING,
    SX_DLV_NEXT_DUE,
    SX_DLV_RECORD,
    SX_DLV_RESET_SENDING,
    SX_COUNT
};

sqlite3 *store_db(struct sb_store *s);
/* The cached statement of slot id, prepared from sql on first use (the same
 * sql every time); NULL with err set. Caller holds the store's lock. */
sqlite3_stmt *store_stmt_extra(struct sb_store *s, enum store_extra_stmt id, const char *sql,
                               struct sb_err *err);
/* Calls the event listener (store_set_event_listener) for ev; never with
 * the lock held. */
void store_notify_event(struct sb_store *s, const struct sb_event *ev);

int db_error(struct sb_store *s, struct sb_err *err, const char *context);
struct sb_store *store_lock(struct sb_store *s);
void store_unlock(struct sb_store **s);
void stmt_release(sqlite3_stmt **st);

/* Holds the store's lock until the end of the enclosing block. */
#define STORE_LOCKED(s) \
    struct sb_store *store_guard_ __attribute__((cleanup(store_unlock), unused)) = store_lock(s)
/* A cached statement, reset and unbound at the end of the enclosing block. */
#define STMT(name) sqlite3_stmt *name __attribute__((cleanup(stmt_release)))

/* Binds text, or SQL NULL when text is NULL. */
void bind_text(sqlite3_stmt *st, int idx, const char *text);
void column_copy(sqlite3_stmt *st, int col, char *dst, size_t len);
/* A malloc'd copy of a text column (caller frees), or NULL on OOM. */
char *column_dup(sqlite3_stmt *st, int col);
/* 400 unless 0 < strlen(value) < size (or value may be empty when allow_empty). */
int check_text(const char *value, size_t size, int allow_empty, const char *field, struct sb_err *err);
/* Runs a write statement to completion; 0 or -1 with err from the database. */
int step_done(struct sb_store *s, sqlite3_stmt *st, const char *context, struct sb_err *err);
/* Reads a single count(*) row. */
int step_count(struct sb_store *s, sqlite3_stmt *st, size_t *count, struct sb_err *err);

/* Steps st to the end, appending one element per row to a growing malloc'd
 * array (ownership passes to the caller on success). `read` fills an element
 * from the current row (0 or -1 on OOM); `clear` frees what it owns. */
typedef int (*row_reader)(sqlite3_stmt *st, void *elem);
typedef void (*elem_clear)(void *elem);
int collect_rows(struct sb_store *s, sqlite3_stmt *st, size_t elem_size, row_reader read,
                 elem_clear clear, void **out, size_t *count, struct sb_err *err);

/* Events (events.c): a row of EVT_COLUMNS into an sb_event. */
#define EVT_COLUMNS "seq, id, org_id, sandbox_id, template_id, type, data_json, created_at"
int store_read_event(sqlite3_stmt *st, void *elem);
void store_event_clear(void *elem);

/* The outbox (webhooks.c): one pending delivery per enabled webhook of the
 * event's org whose filter takes its type; caller holds the lock inside the
 * event's transaction. */
int webhook_outbox_append_locked(struct sb_store *s, const struct sb_event *ev, struct sb_err *err);

#endif
