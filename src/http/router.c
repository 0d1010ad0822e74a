/*
 * router.c - (method, path) -> handler with ":name" parameters (see router.h).
 *
 * Routes are kept in a flat array, each pattern split into segments once at
 * sb_router_add(). Matching splits the path into at most ROUTER_MAX_SEGMENTS
 * segments and compares it with every route of the same length; the API has
 * a few dozen routes, so a linear scan is simpler than a tree and as fast.
 * Among matching routes the most specific wins: at the first segment where
 * two patterns differ, a literal beats a parameter, and between patterns of
 * the same shape a route for the request's dialect beats one for every
 * dialect. Routes for other dialects are invisible. HEAD falls back to GET.
 *
 * Paths and patterns with empty segments ("//", a trailing "/" other than the
 * root "/") never match: "/sandboxes/" is not "/sandboxes". The path is
 * already percent-decoded by libmicrohttpd; the router compares bytes.
 * Owns: copies of the patterns and method names. Never sees a connection.
 */
#include "http/router.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ROUTER_MAX_SEGMENTS 16
#define ROUTER_METHOD_MAX 16

struct route {
    char method[ROUTER_METHOD_MAX];
    char *pattern;                          /* owned copy, split in place by NULs */
    int segment_count;
    const char *segments[ROUTER_MAX_SEGMENTS];  /* point into pattern; ":x" = param */
    sb_handler_fn handler;
    int flags;
    char *query;                            /* owned; NULL = not checked */
    sb_error_render_fn render_error;
    unsigned dialects;                      /* 0 = every dialect */
};

struct sb_router {
    struct route *routes;
    size_t count, cap;
    struct {
        sb_handler_fn handler;      /* NULL: the dialect has routes */
        int flags;
    } catch_all[SB_DIALECT_MAX];
};

/* A path split into segments: views into the original string. */
struct split_path {
    int count;
    const char *start[ROUTER_MAX_SEGMENTS];
    size_t len[ROUTER_MAX_SEGMENTS];
};

/* Caller owns the result and frees it with sb_router_free(). */
struct sb_router *sb_router_new(void)
{
    return calloc(1, sizeof(struct sb_router));
}

void sb_router_free(struct sb_router *router)
{
    if (!router)
        return;
    for (size_t i = 0; i < router->count; i++) {
        free(router->routes[i].pattern);
        free(router->routes[i].query);
    }
    free(router->routes);
    free(router);
}

/* Splits "/a/b" into segments. "/" has none. Returns -1 for a path that does
 * not start with '/', has an empty segment, or has too many segments. */
static int split_path(const char *path, struct split_path *out)
{
    out->count = 0;
    if (path[0] != '/')
        return -1;
    if (path[1] == '\0')
        return 0;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || out->count == ROUTER_MAX_SEGMENTS)
            return -1;
        out->start[out->count] = p;
        out->len[out->count] = len;
        out->count++;
        if (!slash)
            return 0;
        p = slash + 1;
    }
}

static int is_param(const char *segment) { return segment[0] == ':'; }

/* Fills r's segments from its owned pattern copy. */
static int route_parse(struct route *r)
{
    struct split_path split;
    if (split_path(r->pattern, &split) < 0)
        return -1;
    int params = 0;
    for (int i = 0; i < split.count; i++) {
        char *seg = (char *)split.start[i];
        seg[split.len[i]] = '\0';   /* the '/' after it becomes the terminator */
        if (is_param(seg) && (seg[1] == '\0' || ++params > SB_ROUTE_MAX_PARAMS))
            return -1;
        r->segments[i] = seg;
    }
    r->segment_count = split.count;
    return 0;
}

/* Returns -1 with errno EINVAL for a malformed pattern (empty segment, bare
 * ':', more than SB_ROUTE_MAX_PARAMS parameters) or EEXIST for a duplicate. */
int sb_router_add(struct sb_router *router, const char *method, const char *pattern,
                  sb_handler_fn handler, int flags)
{
    return sb_router_add_query(router, method, pattern, handler, flags, NULL);
}

int sb_router_add_query(struct sb_router *router, const char *method, const char *pattern,
                        sb_handler_fn handler, int flags, const char *query)
{
    struct sb_route_spec spec = {.method = method, .pattern = pattern, .handler = handler,
                                 .flags = flags, .query = query};
    return sb_router_add_spec(router, &spec);
}

int sb_router_add_spec(struct sb_router *router, const struct sb_route_spec *spec)
{
    const char *method = spec->method, *pattern = spec->pattern, *query = spec->query;
    if (!method || !pattern || !spec->handler || strlen(method) >= ROUTER_METHOD_MAX ||
        (spec->dialects >> SB_DIALECT_MAX) != 0) {
        errno = EINVAL;
        return -1;
    }
    struct route r = {.handler = spec->handler, .flags = spec->flags,
                      .render_error = spec->render_error, .dialects = spec->dialects};
    strcpy(r.method, method);
    r.pattern = strdup(pattern);
    r.query = query ? strdup(query) : NULL;
    if (!r.pattern || (query && !r.query)) {
        free(r.pattern);
        free(r.query);
        return -1;
    }
    if (route_parse(&r) < 0) {
        free(r.pattern);
        free(r.query);
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < router->count; i++) {
        const struct route *o = &router->routes[i];
        int overlap = o->dialects == r.dialects || (o->dialects & r.dialects) != 0;
        int same = overlap && strcmp(o->method, method) == 0 && o->segment_count == r.segment_count;
        for (int s = 0; same && s < r.segment_count; s++)
            same = is_param(o->segments[s]) ? is_param(r.segments[s])
                                             : strcmp(o->segments[s], r.segments[s]) == 0;
        if (same) {
            free(r.pattern);
            free(r.query);
            errno = EEXIST;
            return -1;
        }
    }
    if (router->count == router->cap) {
        size_t cap = router->cap ? router->cap * 2 : 16;
        struct route *grown = realloc(router->routes, cap * sizeof *grown);
        if (!grown) {
            free(r.pattern);
            free(r.query);
            return -1;
        }
        router->routes = grown;
        router->cap = cap;
    }
    router->routes[router->count++] = r;
    return 0;
}

static int route_matches_path(const struct route *r, const struct split_path *path)
{
    if (r->segment_count != path->count)
        return 0;
    for (int i = 0; i < path->count; i++) {
        const char *seg = r->segments[i];
        if (!is_param(seg) && (strlen(seg) != path->len[i] ||
                               memcmp(seg, path->start[i], path->len[i]) != 0))
            return 0;
    }
    return 1;
}

/* True when a is more specific than b: a literal where b has a parameter at
 * the first segment where they differ in kind; with the same shape, a route
 * for some dialects over one for every dialect. */
static int route_more_specific(const struct route *a, const struct route *b)
{
    for (int i = 0; i < a->segment_count; i++) {
        int a_param = is_param(a->segments[i]), b_param = is_param(b->segments[i]);
        if (a_param != b_param)
            return !a_param;
    }
    return a->dialects != 0 && b->dialects == 0;
}

static int route_visible(const struct route *r, int dialect)
{
    return r->dialects == 0 || (r->dialects & SB_DIALECT_BIT(dialect)) != 0;
}

static const struct route *best_route(const struct sb_router *router, const struct split_path *path,
                                      const char *method, int dialect)
{
    const struct route *best = NULL;
    for (size_t i = 0; i < router->count; i++) {
        const struct route *r = &router->routes[i];
        if (route_visible(r, dialect) && (!method || strcmp(r->method, method) == 0) &&
            route_matches_path(r, path) && (!best || route_more_specific(r, best)))
            best = r;
    }
    return best;
}

/* Copies the parameter values of path under route r into out. Returns -1 if
 * they do not fit in out->value_buf. */
static int fill_params(const struct route *r, const struct split_path *path,
                       struct sb_route_match *out)
{
    size_t used = 0;
    for (int i = 0; i < path->count; i++) {
        if (!is_param(r->segments[i]))
            continue;
        if (used + path->len[i] + 1 > sizeof out->value_buf)
            return -1;
        char *value = out->value_buf + used;
        memcpy(value, path->start[i], path->len[i]);
        value[path->len[i]] = '\0';
        used += path->len[i] + 1;
        out->param_names[out->param_count] = r->segments[i] + 1;
        out->param_values[out->param_count] = value;
        out->param_count++;
    }
    return 0;
}

/* "GET, DELETE": the distinct methods of routes matching path, in the order
 * the routes were added. Also takes the flags and error renderer of the most
 * specific of them. */
static void fill_allow(const struct sb_router *router, const struct split_path *path, int dialect,
                       struct sb_route_match *out)
{
    size_t used = 0;
    for (size_t i = 0; i < router->count; i++) {
        const struct route *r = &router->routes[i];
        if (!route_visible(r, dialect) || !route_matches_path(r, path))
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(router->routes[j].method, r->method) == 0 &&
                   route_visible(&router->routes[j], dialect) &&
                   route_matches_path(&router->routes[j], path);
        size_t len = strlen(r->method);
        if (seen || used + len + 3 > sizeof out->allow)
            continue;
        if (used) {
            memcpy(out->allow + used, ", ", 2);
            used += 2;
        }
        memcpy(out->allow + used, r->method, len + 1);
        used += len;
    }
    const struct route *best = best_route(router, path, NULL, dialect);
    out->flags = best->flags;
    out->render_error = best->render_error;
}

enum sb_route_result sb_router_match(const struct sb_router *router, const char *method,
                                     const char *path, struct sb_route_match *out)
{
    return sb_router_match_dialect(router, method, path, 0, out);
}

int sb_router_set_catch_all(struct sb_router *router, int dialect, sb_handler_fn handler, int flags)
{
    if (dialect <= 0 || dialect >= SB_DIALECT_MAX || !handler) {
        errno = EINVAL;
        return -1;
    }
    router->catch_all[dialect].handler = handler;
    router->catch_all[dialect].flags = flags;
    return 0;
}

enum sb_route_result sb_router_match_dialect(const struct sb_router *router, const char *method,
                                             const char *path, int dialect,
                                             struct sb_route_match *out)
{
    memset(out, 0, sizeof *out);
    if (dialect > 0 && dialect < SB_DIALECT_MAX && router->catch_all[dialect].handler) {
        out->handler = router->catch_all[dialect].handler;
        out->flags = router->catch_all[dialect].flags;
        return SB_ROUTE_FOUND;
    }
    struct split_path split;
    if (dialect < 0 || dialect >= SB_DIALECT_MAX || split_path(path, &split) < 0)
        return SB_ROUTE_NOT_FOUND;
    const struct route *r = best_route(router, &split, method, dialect);
    if (!r && strcmp(method, "HEAD") == 0)
        r = best_route(router, &split, "GET", dialect);
    if (r) {
        if (fill_params(r, &split, out) < 0) {
            memset(out, 0, sizeof *out);
            return SB_ROUTE_NOT_FOUND;
        }
        out->handler = r->handler;
        out->flags = r->flags;
        out->query = r->query;
        out->render_error = r->render_error;
        return SB_ROUTE_FOUND;
    }
    if (!best_route(router, &split, NULL, dialect))
        return SB_ROUTE_NOT_FOUND;
    fill_allow(router, &split, dialect, out);
    return SB_ROUTE_METHOD_NOT_ALLOWED;
}
