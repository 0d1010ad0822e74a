/*
 * sandbox_list.c - E2B's sandbox lists: GET /v2/sandboxes (filters by
 * state, metadata, template and start time, ordered by start time, paged
 * with limit and nextToken / X-Next-Token) and v1's GET /sandboxes (the
 * running sandboxes, metadata filter), both ListedSandbox[] of the caller's
 * org.
 *
 * The filters run over the org's live rows from the store, on the loop
 * thread (the store is a local SQLite read, as for every GET). Pages are
 * cut by a cursor, not an offset: nextToken is "<startedAt ms>_<sandbox
 * id>" of the last sandbox returned, and the next page holds the sandboxes
 * after it in (startedAt, id) order, so sandboxes created or killed between
 * pages neither repeat nor shift one out.
 *
 * metadata arrives as "k=v&k2=v2" (form-encoded) inside the already
 * decoded query value, each key and value percent-encoded once more before
 * that (spec §2.3): two decodes after the split.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/app.h"
#include "e2b/e2b.h"
#include "e2b/shapes.h"

#define LIST_LIMIT_MAX 100
#define METADATA_PAIRS_MAX 32
#define METADATA_TEXT_MAX 4096

struct list_query {
    unsigned states;            /* SB_SANDBOX_STATUS_BIT set; running | paused when none given */
    json_t *metadata;           /* owned: every key must have this value; NULL = no filter */
    const char *template_id;    /* NULL = any */
    int64_t started_after;      /* ms; 0 = any */
    int ascending;
    int limit;
    int have_cursor;
    int64_t cursor_started;
    char cursor_id[32];
};

static int hex_value(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Percent-decodes src[0..len) into out (NUL-terminated), '+' as a space
 * when form is set; -1 for a bad escape, a NUL byte or no room. */
static int percent_decode(const char *src, size_t len, int form, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hex_value((unsigned char)src[i + 1]), lo = hex_value((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        if (c == 0 || n + 1 >= cap)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return 0;
}

/* One key or value of the filter: form-decoded, then URI-decoded (the SDK
 * encodes each with encodeURIComponent before URLSearchParams). */
static int decode_part(const char *src, size_t len, char *out, size_t cap)
{
    char once[METADATA_TEXT_MAX + 1];
    return percent_decode(src, len, 1, once, sizeof once) < 0 ? -1
                                                              : percent_decode(once, strlen(once), 0, out, cap);
}

/* "k=v&k2=v2" into an object of the pairs. */
static int parse_metadata(const char *text, json_t **out, struct sb_err *err)
{
    json_t *obj = json_object();
    size_t pairs = 0;
    if (!obj)
        return sb_err_set(err, 500, "out of memory");
    if (strlen(text) > METADATA_TEXT_MAX) {
        json_decref(obj);
        return sb_err_set(err, 400, "invalid metadata filter: longer than %d bytes", METADATA_TEXT_MAX);
    }
    for (const char *p = text; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char key[METADATA_TEXT_MAX + 1], value[METADATA_TEXT_MAX + 1];
        if (!eq || eq == p || ++pairs > METADATA_PAIRS_MAX ||
            decode_part(p, (size_t)(eq - p), key, sizeof key) < 0 ||
            decode_part(eq + 1, len - (size_t)(eq - p) - 1, value, sizeof value) < 0) {
            json_decref(obj);
            return sb_err_set(err, 400, "invalid metadata filter: expected key=value pairs joined by & "
                                        "(at most %d), each percent-encoded", METADATA_PAIRS_MAX);
        }
        if (json_object_set_new(obj, key, json_string(value)) < 0) {    /* not UTF-8 */
            json_decref(obj);
            return sb_err_set(err, 400, "invalid metadata filter: keys and values must be UTF-8");
        }
        p += len + (amp ? 1 : 0);
    }
    *out = obj;
    return 0;
}

struct state_parse {
    unsigned states;
    struct sb_err *err;
};

static int add_state(void *arg, const char *value)
{
    struct state_parse *sp = arg;
    char buf[128];
    if (strlen(value) >= sizeof buf)
        return sb_err_set(sp->err, 400, "invalid state filter: longer than %zu bytes", sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", value);
    if (!*buf)
        return sb_err_set(sp->err, 400, "invalid state filter: empty (running, paused)");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "running") == 0)
            sp->states |= SB_SANDBOX_STATUS_BIT(SB_SANDBOX_RUNNING);
        else if (strcmp(tok, "paused") == 0)
            sp->states |= SB_SANDBOX_STATUS_BIT(SB_SANDBOX_PAUSED);
        else
            return sb_err_set(sp->err, 400, "invalid state filter: %.64s (running, paused)", tok);
    }
    return 0;
}

/* "2026-05-24T10:00:00[.fff]Z" as ms since the epoch. */
static int parse_time(const char *text, int64_t *out)
{
    struct tm tm = {0};
    const char *rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return -1;
    int64_t ms = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; isdigit((unsigned char)*rest); rest++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*rest - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (strcmp(rest, "Z") != 0)
        return -1;
    *out = (int64_t)timegm(&tm) * 1000 + ms;
    return 0;
}

static int parse_cursor(const char *token, struct list_query *q)
{
    char *end;
    long long started = strtoll(token, &end, 10);
    if (end == token || *end != '_' || started < 0 || strlen(end + 1) >= sizeof q->cursor_id ||
        !isdigit((unsigned char)token[0]))
        return -1;
    q->have_cursor = 1;
    q->cursor_started = started;
    snprintf(q->cursor_id, sizeof q->cursor_id, "%s", end + 1);
    return 0;
}

static int parse_query(struct sb_request *req, struct list_query *q, struct sb_err *err)
{
    memset(q, 0, sizeof *q);
    q->limit = LIST_LIMIT_MAX;
    struct state_parse sp = {.err = err};
    sb_request_query_each(req, "state", add_state, &sp);
    if (err->status)
        return -1;
    q->states = sp.states ? sp.states
                          : SB_SANDBOX_STATUS_BIT(SB_SANDBOX_RUNNING) | SB_SANDBOX_STATUS_BIT(SB_SANDBOX_PAUSED);
    const char *metadata = sb_request_query(req, "metadata");
    if (metadata && parse_metadata(metadata, &q->metadata, err) < 0)
        return -1;
    q->template_id = sb_request_query(req, "template");
    const char *after = sb_request_query(req, "startedAfter");
    if (after && parse_time(after, &q->started_after) < 0)
        return sb_err_set(err, 400, "invalid startedAfter: %.64s (RFC 3339 UTC, e.g. "
                                    "2026-05-24T10:00:00.000Z)", after);
    const char *order = sb_request_query(req, "order");
    if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)
        return sb_err_set(err, 400, "invalid order: %.16s (asc or desc)", order);
    q->ascending = order && strcmp(order, "asc") == 0;
    const char *limit = sb_request_query(req, "limit");
    if (limit) {
        char *end;
        long n = strtol(limit, &end, 10);
        if (end == limit || *end || n < 1 || n > LIST_LIMIT_MAX)
            return sb_err_set(err, 400, "invalid limit: %.16s (1 to %d)", limit, LIST_LIMIT_MAX);
        q->limit = (int)n;
    }
    const char *token = sb_request_query(req, "nextToken");
    if (token && parse_cursor(token, q) < 0)
        return sb_err_set(err, 400, "invalid nextToken: pass the X-Next-Token of the previous page");
    return 0;
}

/* Order of two sandboxes in the list: by startedAt, then id. */
static int compare_position(int64_t a_started, const char *a_id, int64_t b_started, const char *b_id)
{
    if (a_started != b_started)
        return a_started < b_started ? -1 : 1;
    return strcmp(a_id, b_id);
}

static int ascending_order(const void *a, const void *b)
{
    const struct sb_sandbox_rec *x = a, *y = b;
    return compare_position(x->started_at, x->id, y->started_at, y->id);
}

static int descending_order(const void *a, const void *b)
{
    return ascending_order(b, a);
}

static int matches(const struct sb_sandbox_rec *rec, const struct list_query *q)
{
    if (!(q->states & SB_SANDBOX_STATUS_BIT(rec->status)))
        return 0;
    if (q->template_id && strcmp(q->template_id, rec->template_id) != 0)
        return 0;
    if (q->started_after && rec->started_at <= q->started_after)
        return 0;
    if (q->have_cursor) {
        int cmp = compare_position(rec->started_at, rec->id, q->cursor_started, q->cursor_id);
        if (q->ascending ? cmp <= 0 : cmp >= 0)
            return 0;
    }
    if (q->metadata && json_object_size(q->metadata)) {
        json_t *have = rec->metadata_json ? json_loads(rec->metadata_json, 0, NULL) : NULL;
        const char *key;
        json_t *want;
        int ok = json_is_object(have);
        json_object_foreach(q->metadata, key, want)
            if (ok && !json_equal(json_object_get(have, key), want))
                ok = 0;
        json_decref(have);
        return ok;
    }
    return 1;
}

/* Answers the page of q; next token header only when more follow. */
static void answer_list(struct sb_request *req, struct list_query *q, int paged)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec *list = NULL;
    size_t count = 0;
    if (store_sandbox_list(api_app(req)->store, req->org_id, 0, &list, &count, &err) < 0) {
        json_decref(q->metadata);
        sb_respond_error(req, &err);
        return;
    }
    if (count > 1)
        qsort(list, count, sizeof *list, q->ascending ? ascending_order : descending_order);
    json_t *arr = json_array();
    const struct sb_sandbox_rec *last = NULL;
    int more = 0;
    for (size_t i = 0; arr && i < count; i++) {
        if (!matches(&list[i], q))
            continue;
        if (paged && (int)json_array_size(arr) == q->limit) {
            more = 1;
            break;
        }
        json_array_append_new(arr, e2b_listed_shape(&list[i]));
        last = &list[i];
    }
    char token[64] = "";
    if (more && last)
        snprintf(token, sizeof token, "%lld_%s", (long long)last->started_at, last->id);
    sb_respond_json_header(req, 200, arr, more ? "X-Next-Token" : NULL, token);
    store_sandbox_list_free(list, count);
    json_decref(q->metadata);
}

void e2b_sandbox_list_v2(struct sb_request *req)
{
    struct sb_err err = {0};
    struct list_query q;
    if (parse_query(req, &q, &err) < 0) {
        json_decref(q.metadata);
        sb_respond_error(req, &err);
        return;
    }
    answer_list(req, &q, 1);
}

/* v1: the running sandboxes, all of them. */
void e2b_sandbox_list_v1(struct sb_request *req)
{
    struct sb_err err = {0};
    struct list_query q = {.states = SB_SANDBOX_STATUS_BIT(SB_SANDBOX_RUNNING)};
    const char *metadata = sb_request_query(req, "metadata");
    if (metadata && parse_metadata(metadata, &q.metadata, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    answer_list(req, &q, 0);
}
