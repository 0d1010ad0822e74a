/*
 * port_target.c - reading a sandbox port out of a Host, a path or E2B's
 * header pair (see port_target.h). Everything is checked before anything
 * is looked up: a Host that is not exactly <digits>-<id>.<domain> is not a
 * port request, so the API's own host names can never be taken for one.
 */
#include "api/port_target.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/id.h"

int api_port_number(const char *text, size_t len, unsigned *port)
{
    if (len == 0 || len > 5 || text[0] == '0')
        return -1;
    unsigned n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        n = n * 10 + (unsigned)(text[i] - '0');
    }
    if (n < 1 || n > 65535)
        return -1;
    *port = n;
    return 0;
}

int api_port_id(const char *text, size_t len, char id[API_PORT_ID_MAX])
{
    if (len < 5 || len >= API_PORT_ID_MAX)
        return -1;
    for (size_t i = 0; i < len; i++)
        id[i] = (char)tolower((unsigned char)text[i]);
    id[len] = '\0';
    if (id[3] == '-')
        id[3] = '_';
    return sb_id_valid("sbx_", id) ? 0 : -1;
}

int api_port_parse_host(const char *host, const char *domain, char id[API_PORT_ID_MAX], unsigned *port)
{
    if (!host || !domain || !*domain)
        return 0;
    const char *dash = strchr(host, '-');
    const char *dot = dash ? strchr(dash, '.') : NULL;
    if (!dot || api_port_number(host, (size_t)(dash - host), port) < 0 ||
        api_port_id(dash + 1, (size_t)(dot - dash - 1), id) < 0)
        return 0;
    size_t dlen = strlen(domain);
    const char *after = dot + 1;
    if (strncasecmp(after, domain, dlen) != 0)
        return 0;
    after += dlen;
    if (*after == '.')      /* a fully qualified name's trailing dot */
        after++;
    if (*after == '\0')
        return 1;
    unsigned ignored;
    return *after == ':' && api_port_number(after + 1, strlen(after + 1), &ignored) == 0;
}

int api_port_parse_path(const char *target, char id[API_PORT_ID_MAX], unsigned *port, const char **rest)
{
    static const char prefix[] = "/sandboxes/";
    if (!target || strncmp(target, prefix, sizeof prefix - 1) != 0)
        return 0;
    const char *start = target + sizeof prefix - 1;
    const char *slash = strchr(start, '/');
    if (!slash || strncmp(slash, "/ports/", 7) != 0)
        return 0;
    const char *num = slash + 7;
    size_t n = strcspn(num, "/?");
    if (api_port_id(start, (size_t)(slash - start), id) < 0 || api_port_number(num, n, port) < 0)
        return -1;
    *rest = num + n;
    return 1;
}
