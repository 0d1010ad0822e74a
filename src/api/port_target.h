/*
 * port_target.h - which sandbox port a request is for, from its Host
 * (<port>-<sandboxID>.<domain>), its path (/sandboxes/<id>/ports/<port>/...)
 * or E2B's header pair (E2b-Sandbox-Id + E2b-Sandbox-Port).
 *
 * Pure text functions (unit-tested in tests/unit/test_port_target.c): no
 * store, no sockets. The sandbox id may be written with '-' for its '_'
 * (sbx-abc... for sbx_abc...), since some DNS and TLS tools refuse '_' in
 * host names; ids come back in their canonical form.
 */
#ifndef SB_API_PORT_TARGET_H
#define SB_API_PORT_TARGET_H

#include <stddef.h>

#define API_PORT_ID_MAX 32
#define API_ENVD_PORT 49983     /* E2B's envd: the header pair with this port is envd's */

enum api_port_form {
    API_PORT_NONE,
    API_PORT_HOST,          /* Host: <port>-<id>.<domain> */
    API_PORT_HEADERS,       /* E2b-Sandbox-Id + E2b-Sandbox-Port (not 49983) */
    API_PORT_PATH,          /* /sandboxes/<id>/ports/<port>[/...] */
};

/* "1".."65535" (digits only, no leading zero) into *port; -1 otherwise. */
int api_port_number(const char *text, size_t len, unsigned *port);

/* A sandbox id as a client may write it ("sbx_..." or "sbx-...", any case)
 * into id, canonical; -1 when it is not one. */
int api_port_id(const char *text, size_t len, char id[API_PORT_ID_MAX]);

/* Host header "<port>-<id>.<domain>" with an optional ":<port>" after it;
 * domain is matched case-insensitively. 1 and id and *port set when it is
 * one, 0 when not. */
int api_port_parse_host(const char *host, const char *domain, char id[API_PORT_ID_MAX], unsigned *port);

/* A raw request target "/sandboxes/<id>/ports/<port>[/rest][?query]": 1
 * with id, *port and *rest (into target: "/rest...", "?query" or "") when
 * the prefix is there and good; 0 when the target is not of this form; -1
 * when it is (/sandboxes/<id>/ports/...) but the id or port is bad. */
int api_port_parse_path(const char *target, char id[API_PORT_ID_MAX], unsigned *port, const char **rest);

#endif
