/*
 * rpc.c - the Connect call's pieces envd decides (see envd.h): reading a
 * unary request message, and the Connect-Timeout-Ms deadline. The wire
 * format itself (envelopes, codes, the error renderer) is http/connect.c.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "e2b/envd.h"

int e2b_rpc_content_type(const struct sb_request *req, const char *want, struct sb_err *err)
{
    const char *type = sb_request_header(req, "Content-Type");
    size_t len = strlen(want);
    if (!type || strncasecmp(type, want, len) != 0 || (type[len] && type[len] != ';'))
        return sb_err_set(err, 415, "unsupported Content-Type %.64s: this envd speaks Connect with the JSON "
                          "codec, and this method takes %s", type ? type : "(none)", want);
    return 0;
}

json_t *e2b_rpc_unary_request(const struct sb_request *req, struct sb_err *err)
{
    if (e2b_rpc_content_type(req, "application/json", err) < 0)
        return NULL;
    return sb_request_json(req, 1, err);
}

int e2b_rpc_timeout_ms(const char *header, uint64_t *ms, struct sb_err *err)
{
    *ms = 0;
    if (!header)
        return 0;
    size_t len = strlen(header);
    if (len == 0 || len > 10)
        return sb_err_set(err, 400, "invalid Connect-Timeout-Ms: 1 to 10 digits");
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)header[i]))
            return sb_err_set(err, 400, "invalid Connect-Timeout-Ms: 1 to 10 digits");
        v = v * 10 + (uint64_t)(header[i] - '0');
    }
    *ms = v;
    return 0;
}
