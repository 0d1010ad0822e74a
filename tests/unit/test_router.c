/*
 * test_router.c - the router: literal and ":param" segments, precedence,
 * 404 vs 405 with Allow, malformed patterns and paths, routes per dialect.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/router.h"

static void h_list(struct sb_request *req) { (void)req; }
static void h_create(struct sb_request *req) { (void)req; }
static void h_get(struct sb_request *req) { (void)req; }
static void h_delete(struct sb_request *req) { (void)req; }
static void h_special(struct sb_request *req) { (void)req; }
static void h_file(struct sb_request *req) { (void)req; }
static void h_health(struct sb_request *req) { (void)req; }
static void h_root(struct sb_request *req) { (void)req; }

static int setup(void **state)
{
    struct sb_router *r = sb_router_new();
    assert_non_null(r);
    assert_int_equal(sb_router_add(r, "GET", "/sandboxes", h_list, 0), 0);
    assert_int_equal(sb_router_add(r, "POST", "/sandboxes", h_create, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "/sandboxes/:id", h_get, 0), 0);
    assert_int_equal(sb_router_add(r, "DELETE", "/sandboxes/:id", h_delete, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "/sandboxes/special", h_special, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "/sandboxes/:id/files/:name", h_file, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "/health", h_health, SB_ROUTE_NO_AUTH), 0);
    assert_int_equal(sb_router_add(r, "GET", "/", h_root, SB_ROUTE_NO_AUTH), 0);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    sb_router_free(*state);
    return 0;
}

static void test_literal_match(void **state)
{
    struct sb_route_match m;
    assert_int_equal(sb_router_match(*state, "GET", "/sandboxes", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_list);
    assert_int_equal(m.param_count, 0);
    assert_int_equal(sb_router_match(*state, "POST", "/sandboxes", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_create);
    assert_int_equal(sb_router_match(*state, "GET", "/health", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_health);
    assert_int_equal(m.flags, SB_ROUTE_NO_AUTH);
    assert_int_equal(sb_router_match(*state, "GET", "/", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_root);
}

static void test_params(void **state)
{
    struct sb_route_match m;
    assert_int_equal(sb_router_match(*state, "GET", "/sandboxes/sb_123/files/a.txt", &m),
                     SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_file);
    assert_int_equal(m.param_count, 2);
    assert_string_equal(m.param_names[0], "id");
    assert_string_equal(m.param_values[0], "sb_123");
    assert_string_equal(m.param_names[1], "name");
    assert_string_equal(m.param_values[1], "a.txt");

    assert_int_equal(sb_router_match(*state, "DELETE", "/sandboxes/xyz", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_delete);
    assert_string_equal(m.param_values[0], "xyz");
}

/* Values are copies: the path buffer may be reused after matching. */
static void test_params_are_copies(void **state)
{
    struct sb_route_match m;
    char path[] = "/sandboxes/abc";
    assert_int_equal(sb_router_match(*state, "GET", path, &m), SB_ROUTE_FOUND);
    memset(path, 'z', sizeof path - 1);
    assert_string_equal(m.param_values[0], "abc");
}

static void test_literal_beats_param(void **state)
{
    struct sb_route_match m;
    assert_int_equal(sb_router_match(*state, "GET", "/sandboxes/special", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_special);
    assert_int_equal(m.param_count, 0);
    /* the literal route has no DELETE: the parameter route still serves it */
    assert_int_equal(sb_router_match(*state, "DELETE", "/sandboxes/special", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_delete);
    assert_string_equal(m.param_values[0], "special");
}

/* Precedence is decided at the first segment that differs, whatever the
 * order of registration. */
static void test_precedence_independent_of_order(void **state)
{
    struct sb_router *r = sb_router_new();
    assert_int_equal(sb_router_add(r, "GET", "/a/:x/c", h_get, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "/a/b/:y", h_special, 0), 0);
    struct sb_route_match m;
    assert_int_equal(sb_router_match(r, "GET", "/a/b/c", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_special);
    assert_string_equal(m.param_names[0], "y");
    assert_int_equal(sb_router_match(r, "GET", "/a/q/c", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_get);
    sb_router_free(r);
}

static void test_not_found(void **state)
{
    struct sb_route_match m;
    assert_int_equal(sb_router_match(*state, "GET", "/nope", &m), SB_ROUTE_NOT_FOUND);
    assert_int_equal(sb_router_match(*state, "GET", "/sandboxes/a/b", &m), SB_ROUTE_NOT_FOUND);
    assert_int_equal(sb_router_match(*state, "GET", "", &m), SB_ROUTE_NOT_FOUND);
    assert_int_equal(sb_router_match(*state, "GET", "sandboxes", &m), SB_ROUTE_NOT_FOUND);
    assert_int_equal(sb_router_match(*state, "GET", "/Sandboxes", &m), SB_ROUTE_NOT_FOUND);
}

static void test_method_not_allowed(void **state)
{
    struct sb_route_match m;
    assert_int_equal(sb_router_match(*state, "PUT", "/sandboxes", &m),
                     SB_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, POST");
    assert_null(m.handler);
    /* both the literal and the parameter route match this path */
    assert_int_equal(sb_router_match(*state, "POST", "/sandboxes/special", &m),
                     SB_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, DELETE");
    assert_int_equal(sb_router_match(*state, "POST", "/health", &m),
                     SB_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET");
    assert_int_equal(m.flags, SB_ROUTE_NO_AUTH);
}

static void test_head_falls_back_to_get(void **state)
{
    struct sb_route_match m;
    assert_int_equal(sb_router_match(*state, "HEAD", "/health", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_health);
}

static void test_empty_segments(void **state)
{
    struct sb_route_match m;
    assert_int_equal(sb_router_match(*state, "GET", "/sandboxes/", &m), SB_ROUTE_NOT_FOUND);
    assert_int_equal(sb_router_match(*state, "GET", "//sandboxes", &m), SB_ROUTE_NOT_FOUND);
    assert_int_equal(sb_router_match(*state, "GET", "/sandboxes//files/x", &m),
                     SB_ROUTE_NOT_FOUND);
    assert_int_equal(sb_router_match(*state, "GET", "/health/", &m), SB_ROUTE_NOT_FOUND);
}

static void test_bad_patterns(void **state)
{
    struct sb_router *r = sb_router_new();
    assert_int_equal(sb_router_add(r, "GET", "/a//b", h_get, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(sb_router_add(r, "GET", "/a/", h_get, 0), -1);
    assert_int_equal(sb_router_add(r, "GET", "a", h_get, 0), -1);
    assert_int_equal(sb_router_add(r, "GET", "/a/:", h_get, 0), -1);
    assert_int_equal(sb_router_add(r, "GET", "/:a/:b/:c/:d/:e", h_get, 0), -1);
    assert_int_equal(sb_router_add(r, "GET", "/:a/:b/:c/:d", h_get, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "/:w/:x/:y/:z", h_get, 0), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(sb_router_add(r, "POST", "/:w/:x/:y/:z", h_get, 0), 0);
    struct sb_route_match m;
    assert_int_equal(sb_router_match(r, "GET", "/1/2/3/4", &m), SB_ROUTE_FOUND);
    assert_int_equal(m.param_count, 4);
    assert_string_equal(m.param_values[3], "4");
    assert_string_equal(m.param_names[3], "d");
    sb_router_free(r);
}

/* Parameter values that do not fit the match's buffer are not found rather
 * than truncated. */
static void test_overlong_param(void **state)
{
    struct sb_route_match m;
    char path[2048] = "/sandboxes/";
    memset(path + strlen(path), 'x', 1500);
    assert_int_equal(sb_router_match(*state, "GET", path, &m), SB_ROUTE_NOT_FOUND);
    path[11 + 1000] = '\0';
    assert_int_equal(sb_router_match(*state, "GET", path, &m), SB_ROUTE_FOUND);
    assert_int_equal(strlen(m.param_values[0]), 1000);
}

static json_t *render_a(const struct sb_err *err, int *status) { return NULL; }
static json_t *render_b(const struct sb_err *err, int *status) { return NULL; }

/* sb_router_add_spec: a route's renderer and flags come with its match, and
 * a 405 takes those of the most specific route of the path. */
static void test_spec_renderer_and_flags(void **state)
{
    struct sb_router *r = sb_router_new();
    struct sb_route_spec upload = {.method = "POST", .pattern = "/rpc/:svc", .handler = h_create,
                                   .flags = SB_ROUTE_STREAM_BODY, .render_error = render_a};
    struct sb_route_spec literal = {.method = "PUT", .pattern = "/rpc/x", .handler = h_get,
                                    .render_error = render_b, .query = "a"};
    assert_int_equal(sb_router_add_spec(r, &upload), 0);
    assert_int_equal(sb_router_add_spec(r, &literal), 0);
    assert_int_equal(sb_router_add_spec(r, &literal), -1);
    assert_int_equal(errno, EEXIST);
    struct sb_route_spec bad = {.method = "GET", .pattern = "/x"};
    assert_int_equal(sb_router_add_spec(r, &bad), -1);     /* no handler */
    struct sb_route_match m;
    assert_int_equal(sb_router_match(r, "POST", "/rpc/y", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.render_error, render_a);
    assert_int_equal(m.flags, SB_ROUTE_STREAM_BODY);
    assert_int_equal(sb_router_match(r, "PUT", "/rpc/x", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.render_error, render_b);
    assert_string_equal(m.query, "a");
    assert_int_equal(sb_router_match(r, "GET", "/rpc/x", &m), SB_ROUTE_METHOD_NOT_ALLOWED);
    assert_ptr_equal(m.render_error, render_b);
    assert_int_equal(sb_router_match(r, "GET", "/rpc/y", &m), SB_ROUTE_METHOD_NOT_ALLOWED);
    assert_ptr_equal(m.render_error, render_a);
    assert_int_equal(sb_router_match(r, "GET", "/nope", &m), SB_ROUTE_NOT_FOUND);
    assert_null(m.render_error);
    sb_router_free(r);
}

/* Dialect 1 overrides two of dialect 0's paths, adds one of its own, and a
 * route of dialect 2 only; every other route serves all three. */
static void test_dialects(void **state)
{
    struct sb_router *r = *state;
    struct sb_route_spec get1 = {.method = "GET", .pattern = "/sandboxes/:id", .handler = h_special,
                                 .dialects = SB_DIALECT_BIT(1)};
    struct sb_route_spec health2 = {.method = "GET", .pattern = "/health", .handler = h_file,
                                    .flags = SB_ROUTE_NO_AUTH, .dialects = SB_DIALECT_BIT(2)};
    struct sb_route_spec put1 = {.method = "PUT", .pattern = "/things", .handler = h_create,
                                 .dialects = SB_DIALECT_BIT(1) | SB_DIALECT_BIT(2)};
    assert_int_equal(sb_router_add_spec(r, &get1), 0);
    assert_int_equal(sb_router_add_spec(r, &health2), 0);
    assert_int_equal(sb_router_add_spec(r, &put1), 0);
    struct sb_route_match m;
    assert_int_equal(sb_router_match_dialect(r, "GET", "/sandboxes/x", 1, &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_special);
    assert_string_equal(m.param_values[0], "x");
    assert_int_equal(sb_router_match_dialect(r, "GET", "/sandboxes/x", 0, &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_get);
    assert_int_equal(sb_router_match_dialect(r, "GET", "/sandboxes/x", 2, &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_get);
    /* a literal of every dialect still beats a parameter of this one */
    assert_int_equal(sb_router_match_dialect(r, "GET", "/sandboxes/special", 1, &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_special);
    assert_int_equal(sb_router_match_dialect(r, "GET", "/health", 2, &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_file);
    assert_int_equal(sb_router_match(r, "GET", "/health", &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_health);
    /* a route of other dialects is invisible: 404, not 405 */
    assert_int_equal(sb_router_match(r, "PUT", "/things", &m), SB_ROUTE_NOT_FOUND);
    assert_int_equal(sb_router_match_dialect(r, "PUT", "/things", 2, &m), SB_ROUTE_FOUND);
    assert_int_equal(sb_router_match_dialect(r, "GET", "/things", 1, &m), SB_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "PUT");
    assert_int_equal(sb_router_match(r, "POST", "/sandboxes/x", &m), SB_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, DELETE");
    assert_int_equal(sb_router_match_dialect(r, "GET", "/sandboxes", SB_DIALECT_MAX, &m), SB_ROUTE_NOT_FOUND);
    /* duplicates: the same dialects twice, or overlapping ones */
    errno = 0;
    assert_int_equal(sb_router_add_spec(r, &get1), -1);
    assert_int_equal(errno, EEXIST);
    struct sb_route_spec overlap = put1;
    overlap.dialects = SB_DIALECT_BIT(2);
    assert_int_equal(sb_router_add_spec(r, &overlap), -1);
    assert_int_equal(errno, EEXIST);
    struct sb_route_spec beyond = get1;
    beyond.dialects = SB_DIALECT_BIT(SB_DIALECT_MAX);
    assert_int_equal(sb_router_add_spec(r, &beyond), -1);
    assert_int_equal(errno, EINVAL);
}

static void test_catch_all(void **state)
{
    struct sb_router *r = *state;
    struct sb_route_match m;
    assert_int_equal(sb_router_set_catch_all(r, 0, h_special, 0), -1);
    assert_int_equal(sb_router_set_catch_all(r, SB_DIALECT_MAX, h_special, 0), -1);
    assert_int_equal(sb_router_set_catch_all(r, 3, h_special, SB_ROUTE_STREAM_BODY), 0);
    /* every method and path of dialect 3, even one no route has */
    assert_int_equal(sb_router_match_dialect(r, "PATCH", "/no/such/thing", 3, &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_special);
    assert_int_equal(m.flags, SB_ROUTE_STREAM_BODY);
    assert_int_equal(sb_router_match_dialect(r, "GET", "/sandboxes", 3, &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_special);
    /* other dialects keep their routes */
    assert_int_equal(sb_router_match_dialect(r, "GET", "/sandboxes", 0, &m), SB_ROUTE_FOUND);
    assert_ptr_equal(m.handler, h_list);
    assert_int_equal(sb_router_match_dialect(r, "PATCH", "/no/such/thing", 2, &m), SB_ROUTE_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_renderer_and_flags),
        cmocka_unit_test_setup_teardown(test_literal_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_are_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_beats_param, setup, teardown),
        cmocka_unit_test(test_precedence_independent_of_order),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_falls_back_to_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_segments, setup, teardown),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test_setup_teardown(test_dialects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_all, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
