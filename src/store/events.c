/*
 * events.c - reading and forgetting lifecycle events (store.h): the events
 * API's filtered, cursor-paged queries, the live stream's catch-up after a
 * given event, and retention. Appending lives in sqlite.c, where it shares
 * the transaction of the sandbox row it records.
 *
 * Order is the event's seq (the table's INTEGER PRIMARY KEY, assigned in
 * commit order under the store's one writer), never created_at: two events
 * in the same millisecond still have one order, and a cursor ("older than
 * event X") is exact.
 */
#include <stdint.h>
#include <stdlib.h>

#include "store/store_internal.h"

#define EVT_SELECT "SELECT " EVT_COLUMNS " FROM events"
/* ?1 org, ?2 before seq, ?3 since ms, ?4 type set (NULL: any), ?5 limit, ?6 sandbox */
#define EVT_FILTER " WHERE org_id = ?1 AND seq < ?2 AND created_at >= ?3" \
                   " AND (?4 IS NULL OR instr(?4, ',' || type || ',') > 0)"

static const char sql_query_org[] = EVT_SELECT EVT_FILTER " ORDER BY seq DESC LIMIT ?5";
static const char sql_query_sandbox[] = EVT_SELECT EVT_FILTER " AND sandbox_id = ?6 ORDER BY seq DESC LIMIT ?5";
static const char sql_after[] = EVT_SELECT " WHERE org_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
static const char sql_seq[] = "SELECT seq FROM events WHERE org_id = ?1 AND id = ?2";
static const char sql_prune[] = "DELETE FROM events WHERE created_at < ?1";

int store_read_event(sqlite3_stmt *st, void *elem)
{
    struct sb_event *ev = elem;
    ev->seq = sqlite3_column_int64(st, 0);
    column_copy(st, 1, ev->id, sizeof ev->id);
    column_copy(st, 2, ev->org_id, sizeof ev->org_id);
    column_copy(st, 3, ev->sandbox_id, sizeof ev->sandbox_id);
    column_copy(st, 4, ev->template_id, sizeof ev->template_id);
    column_copy(st, 5, ev->type, sizeof ev->type);
    ev->data_json = column_dup(st, 6);
    ev->created_at = sqlite3_column_int64(st, 7);
    return ev->data_json ? 0 : -1;
}

void store_event_clear(void *elem)
{
    struct sb_event *ev = elem;
    free(ev->data_json);
    ev->data_json = NULL;
}

int store_event_query(struct sb_store *store, const struct sb_event_query *q, struct sb_event **out,
                      size_t *count, struct sb_err *err)
{
    *out = NULL;
    *count = 0;
    if (!q->org_id || !q->org_id[0])
        return sb_err_set(err, 400, "events are listed per org: no org given");
    STORE_LOCKED(store);
    STMT(st) = q->sandbox_id ? store_stmt_extra(store, SX_EVT_QUERY_SANDBOX, sql_query_sandbox, err)
                             : store_stmt_extra(store, SX_EVT_QUERY_ORG, sql_query_org, err);
    if (!st)
        return -1;
    bind_text(st, 1, q->org_id);
    sqlite3_bind_int64(st, 2, q->before_seq > 0 ? q->before_seq : INT64_MAX);
    sqlite3_bind_int64(st, 3, q->since_ms);
    bind_text(st, 4, q->types);
    sqlite3_bind_int(st, 5, q->limit > 0 ? q->limit : 100);
    if (q->sandbox_id)
        bind_text(st, 6, q->sandbox_id);
    void *rows;
    int rc = collect_rows(store, st, sizeof **out, store_read_event, store_event_clear, &rows, count, err);
    *out = rows;
    return rc;
}

int store_event_list(struct sb_store *store, const char *org_id, const char *sandbox_id, int limit,
                     struct sb_event **out, size_t *count, struct sb_err *err)
{
    struct sb_event_query q = {.org_id = org_id, .sandbox_id = sandbox_id, .limit = limit};
    return store_event_query(store, &q, out, count, err);
}

int store_event_list_after(struct sb_store *store, const char *org_id, int64_t after_seq, int limit,
                           struct sb_event **out, size_t *count, struct sb_err *err)
{
    *out = NULL;
    *count = 0;
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_EVT_AFTER, sql_after, err);
    if (!st)
        return -1;
    bind_text(st, 1, org_id);
    sqlite3_bind_int64(st, 2, after_seq);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : 100);
    void *rows;
    int rc = collect_rows(store, st, sizeof **out, store_read_event, store_event_clear, &rows, count, err);
    *out = rows;
    return rc;
}

int store_event_seq(struct sb_store *store, const char *org_id, const char *id, int64_t *seq,
                    struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_EVT_SEQ, sql_seq, err);
    if (!st)
        return -1;
    bind_text(st, 1, org_id);
    bind_text(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return sb_err_set(err, 404, "event not found");
    if (rc != SQLITE_ROW)
        return db_error(store, err, "looking up an event");
    *seq = sqlite3_column_int64(st, 0);
    return 0;
}

int store_event_prune(struct sb_store *store, int64_t before_ms, size_t *pruned, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_EVT_PRUNE, sql_prune, err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, before_ms);
    if (step_done(store, st, "pruning events", err) < 0)
        return -1;
    *pruned = (size_t)sqlite3_changes(store_db(store));
    return 0;
}

void store_event_list_free(struct sb_event *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        store_event_clear(&list[i]);
    free(list);
}
