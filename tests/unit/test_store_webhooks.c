/*
 * test_store_webhooks.c - webhooks and the delivery outbox in the store
 * (store/webhooks.c, store/events.c) on a real database file: org scoping,
 * one delivery per matching enabled webhook written with the event (and
 * none when the event's transaction fails), claim order per sandbox,
 * attempt records, retry, reset of `sending` rows, event queries with
 * cursor/type/since, and retention.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "store/store.h"
#include "store/webhooks.h"

struct fixture {
    char dir[64];
    struct sb_store *store;
    struct sb_org org, other;
    int notified;
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void count_events(void *arg, const struct sb_event *ev)
{
    struct fixture *f = arg;
    assert_true(ev->seq > 0);
    assert_int_equal(strncmp(ev->id, "evt_", 4), 0);
    f->notified++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sb-wh-test-XXXXXX");
    struct sb_err err = {0};
    if (!mkdtemp(f->dir) || store_open(f->dir, &f->store, &err) < 0 ||
        store_org_create(f->store, "acme", &f->org, &err) < 0 ||
        store_org_create(f->store, "globex", &f->other, &err) < 0)
        return -1;
    store_set_event_listener(f->store, count_events, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->store);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void add_webhook(struct fixture *f, const char *org_id, const char *events, int enabled,
                        struct sb_webhook *out)
{
    struct sb_err err = {0};
    memset(out, 0, sizeof *out);
    snprintf(out->org_id, sizeof out->org_id, "%s", org_id);
    snprintf(out->name, sizeof out->name, "hook");
    snprintf(out->url, sizeof out->url, "http://127.0.0.1:9/hook");
    snprintf(out->secret, sizeof out->secret, "whsec_test");
    out->events_json = strdup(events);
    out->enabled = enabled;
    assert_int_equal(store_webhook_insert(f->store, out, &err), 0);
    assert_int_equal(strncmp(out->id, "wh_", 3), 0);
}

static void append(struct fixture *f, const char *org_id, const char *sandbox, const char *type)
{
    struct sb_err err = {0};
    assert_int_equal(store_event_append(f->store, org_id, sandbox, "base", type, NULL, &err), 0);
}

static size_t delivery_count(struct fixture *f, const struct sb_webhook *wh)
{
    struct sb_delivery *list;
    size_t n;
    struct sb_err err = {0};
    assert_int_equal(store_delivery_list(f->store, wh->org_id, wh->id, 0, &list, &n, &err), 0);
    free(list);
    return n;
}

static void test_crud_is_org_scoped(void **state)
{
    struct fixture *f = *state;
    struct sb_webhook wh, got;
    struct sb_err err = {0};
    add_webhook(f, f->org.id, "[]", 1, &wh);
    assert_int_equal(store_webhook_get(f->store, f->other.id, wh.id, &got, &err), -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.msg, "webhook not found");
    assert_int_equal(store_webhook_get(f->store, f->org.id, wh.id, &got, &err), 0);
    assert_string_equal(got.secret, "whsec_test");
    assert_string_equal(got.events_json, "[]");
    store_webhook_clear(&got);
    snprintf(wh.name, sizeof wh.name, "renamed");
    snprintf(wh.org_id, sizeof wh.org_id, "%s", f->other.id);
    assert_int_equal(store_webhook_update(f->store, &wh, &err), -1);     /* not theirs */
    assert_int_equal(err.status, 404);
    snprintf(wh.org_id, sizeof wh.org_id, "%s", f->org.id);
    free(wh.events_json);
    wh.events_json = strdup("{\"not\":\"an array\"}");
    assert_int_equal(store_webhook_update(f->store, &wh, &err), -1);
    assert_int_equal(err.status, 400);
    free(wh.events_json);
    wh.events_json = strdup("[\"sandbox.lifecycle.killed\"]");
    assert_int_equal(store_webhook_update(f->store, &wh, &err), 0);
    struct sb_webhook *list;
    size_t n;
    assert_int_equal(store_webhook_list(f->store, f->other.id, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    store_webhook_list_free(list, n);
    assert_int_equal(store_webhook_list(f->store, f->org.id, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "renamed");
    store_webhook_list_free(list, n);
    assert_int_equal(store_webhook_delete(f->store, f->other.id, wh.id, &err), -1);
    assert_int_equal(store_webhook_delete(f->store, f->org.id, wh.id, &err), 0);
    assert_int_equal(store_webhook_delete(f->store, f->org.id, wh.id, &err), -1);
    assert_int_equal(err.status, 404);
    store_webhook_clear(&wh);
}

static void test_outbox_rows_follow_filters(void **state)
{
    struct fixture *f = *state;
    struct sb_webhook all, killed, off, theirs;
    add_webhook(f, f->org.id, "[]", 1, &all);
    add_webhook(f, f->org.id, "[\"sandbox.lifecycle.killed\"]", 1, &killed);
    add_webhook(f, f->org.id, "[]", 0, &off);
    add_webhook(f, f->other.id, "[]", 1, &theirs);
    append(f, f->org.id, "sbx_a", "sandbox.lifecycle.created");
    append(f, f->org.id, "sbx_a", "sandbox.lifecycle.killed");
    assert_int_equal(f->notified, 2);
    assert_int_equal(delivery_count(f, &all), 2);
    assert_int_equal(delivery_count(f, &killed), 1);
    assert_int_equal(delivery_count(f, &off), 0);
    assert_int_equal(delivery_count(f, &theirs), 0);
    /* a sandbox write that fails writes neither event nor delivery */
    struct sb_sandbox_rec rec = {.status = SB_SANDBOX_RUNNING, .cpu_count = 1, .memory_mb = 1, .disk_mb = 1};
    snprintf(rec.id, sizeof rec.id, "sbx_missing");
    snprintf(rec.org_id, sizeof rec.org_id, "%s", f->org.id);
    struct sb_err err = {0};
    assert_int_equal(store_sandbox_write(f->store, &rec, 0, "sandbox.lifecycle.paused", NULL, &err), -1);
    assert_int_equal(delivery_count(f, &all), 2);
    assert_int_equal(f->notified, 2);
    /* deleting the webhook takes its deliveries */
    assert_int_equal(store_webhook_delete(f->store, f->org.id, all.id, &err), 0);
    assert_int_equal(store_delivery_list(f->store, f->org.id, all.id, 0, &(struct sb_delivery *){0},
                                         &(size_t){0}, &err), -1);
    store_webhook_clear(&all);
    store_webhook_clear(&killed);
    store_webhook_clear(&off);
    store_webhook_clear(&theirs);
}

static void test_claim_order_record_retry(void **state)
{
    struct fixture *f = *state;
    struct sb_webhook wh;
    struct sb_err err = {0};
    add_webhook(f, f->org.id, "[]", 1, &wh);
    append(f, f->org.id, "sbx_a", "sandbox.lifecycle.created");
    append(f, f->org.id, "sbx_b", "sandbox.lifecycle.created");
    append(f, f->org.id, "sbx_a", "sandbox.lifecycle.killed");
    int64_t now = sb_wall_ms() + 1;
    struct sb_delivery_job *jobs;
    size_t n;
    /* one per sandbox: a's second waits for its first */
    assert_int_equal(store_delivery_claim(f->store, now, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(jobs[0].event.sandbox_id, "sbx_a");
    assert_string_equal(jobs[0].event.type, "sandbox.lifecycle.created");
    assert_string_equal(jobs[1].event.sandbox_id, "sbx_b");
    assert_string_equal(jobs[0].url, "http://127.0.0.1:9/hook");
    assert_string_equal(jobs[0].secret, "whsec_test");
    char a_first[32];
    snprintf(a_first, sizeof a_first, "%s", jobs[0].id);
    store_delivery_jobs_free(jobs, n);
    assert_int_equal(store_delivery_claim(f->store, now, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 0);     /* sending rows are not claimed twice */
    free(jobs);
    int64_t next;
    assert_int_equal(store_delivery_next_due(f->store, &next, &err), 0);
    assert_true(next == INT64_MAX);
    /* a's first fails, retried later: a's second still waits */
    struct sb_delivery_attempt a = {.status = SB_DELIVERY_PENDING, .attempted_at = now,
                                    .next_attempt_at = now + 60000, .status_code = 500, .error = "HTTP 500"};
    assert_int_equal(store_delivery_record(f->store, a_first, &a, &err), 0);
    assert_int_equal(store_delivery_claim(f->store, now, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 0);
    free(jobs);
    assert_int_equal(store_delivery_next_due(f->store, &next, &err), 0);
    assert_true(next == now + 60000);
    /* retried by hand: due now, attempts start again */
    struct sb_delivery d;
    assert_int_equal(store_delivery_retry(f->store, f->other.id, wh.id, a_first, &d, &err), -1);
    assert_string_equal(err.msg, "webhook not found");
    assert_int_equal(store_delivery_retry(f->store, f->org.id, wh.id, "dlv_nope", &d, &err), -1);
    assert_string_equal(err.msg, "delivery not found");
    assert_int_equal(store_delivery_retry(f->store, f->org.id, wh.id, a_first, &d, &err), 0);
    assert_int_equal(d.status, SB_DELIVERY_PENDING);
    assert_int_equal(d.attempts, 0);
    assert_int_equal(d.last_status_code, 500);
    assert_int_equal(store_delivery_claim(f->store, sb_wall_ms() + 1, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].id, a_first);
    store_delivery_jobs_free(jobs, n);
    assert_int_equal(store_delivery_retry(f->store, f->org.id, wh.id, a_first, &d, &err), -1);
    assert_int_equal(err.status, 409);     /* being sent */
    a.status = SB_DELIVERY_DELIVERED;
    a.status_code = 204;
    a.error = "";
    assert_int_equal(store_delivery_record(f->store, a_first, &a, &err), 0);
    assert_int_equal(store_delivery_claim(f->store, sb_wall_ms() + 1, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);     /* now a's second */
    assert_string_equal(jobs[0].event.type, "sandbox.lifecycle.killed");
    store_delivery_jobs_free(jobs, n);
    /* a crash leaves it `sending`: start-up makes it pending again */
    size_t reset;
    assert_int_equal(store_delivery_reset_sending(f->store, &reset, &err), 0);
    assert_int_equal(reset, 2);     /* a's second and b's first */
    assert_int_equal(store_delivery_claim(f->store, sb_wall_ms() + 1, 1, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    store_delivery_jobs_free(jobs, n);
    a.status = SB_DELIVERY_SENDING;
    assert_int_equal(store_delivery_record(f->store, a_first, &a, &err), -1);
    store_webhook_clear(&wh);
}

static void test_event_query_and_prune(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    append(f, f->org.id, "sbx_a", "sandbox.lifecycle.created");
    append(f, f->org.id, "sbx_b", "sandbox.lifecycle.created");
    append(f, f->org.id, "sbx_a", "sandbox.lifecycle.paused");
    append(f, f->other.id, "sbx_c", "sandbox.lifecycle.created");
    struct sb_event *list;
    size_t n;
    struct sb_event_query q = {.org_id = f->org.id};
    assert_int_equal(store_event_query(f->store, &q, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].type, "sandbox.lifecycle.paused");
    assert_true(list[0].seq > list[1].seq && list[1].seq > list[2].seq);
    int64_t seq;
    assert_int_equal(store_event_seq(f->store, f->org.id, list[0].id, &seq, &err), 0);
    assert_true(seq == list[0].seq);
    assert_int_equal(store_event_seq(f->store, f->other.id, list[0].id, &seq, &err), -1);
    assert_int_equal(err.status, 404);
    q.before_seq = list[0].seq;
    store_event_list_free(list, n);
    assert_int_equal(store_event_query(f->store, &q, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    store_event_list_free(list, n);
    q = (struct sb_event_query){.org_id = f->org.id, .types = ",sandbox.lifecycle.paused,"};
    assert_int_equal(store_event_query(f->store, &q, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    store_event_list_free(list, n);
    q = (struct sb_event_query){.org_id = f->org.id, .sandbox_id = "sbx_a", .limit = 1};
    assert_int_equal(store_event_query(f->store, &q, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].type, "sandbox.lifecycle.paused");
    store_event_list_free(list, n);
    q = (struct sb_event_query){.org_id = f->org.id, .since_ms = sb_wall_ms() + 10000};
    assert_int_equal(store_event_query(f->store, &q, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    free(list);
    assert_int_equal(store_event_list_after(f->store, f->org.id, 0, 10, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].type, "sandbox.lifecycle.created");    /* oldest first */
    store_event_list_free(list, n);
    q = (struct sb_event_query){.org_id = NULL};
    assert_int_equal(store_event_query(f->store, &q, &list, &n, &err), -1);
    /* retention: everything before a point in time goes, with its deliveries */
    struct sb_webhook wh;
    add_webhook(f, f->org.id, "[]", 1, &wh);
    append(f, f->org.id, "sbx_a", "sandbox.lifecycle.killed");
    assert_int_equal(delivery_count(f, &wh), 1);
    size_t pruned;
    assert_int_equal(store_event_prune(f->store, sb_wall_ms() + 1, &pruned, &err), 0);
    assert_int_equal(pruned, 5);
    assert_int_equal(delivery_count(f, &wh), 0);
    assert_int_equal(store_event_prune(f->store, sb_wall_ms() + 1, &pruned, &err), 0);
    assert_int_equal(pruned, 0);
    store_webhook_clear(&wh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crud_is_org_scoped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_rows_follow_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_order_record_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_query_and_prune, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
