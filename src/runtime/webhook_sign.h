/*
 * webhook_sign.h - how a webhook request proves it came from this server,
 * and the secrets it is signed with.
 *
 * Two schemes over the same raw body, sent side by side so a receiver
 * written for either can check it:
 *  - SandBase (X-Signature): lowercase hex of HMAC-SHA256 keyed with the
 *    webhook's secret over the raw body.
 *  - E2B (e2b-signature, with e2b-signature-version: v1): standard base64,
 *    '=' padding removed, of the plain SHA-256 of secret followed by body.
 * Pure functions (libsodium): safe from any thread.
 */
#ifndef SB_RUNTIME_WEBHOOK_SIGN_H
#define SB_RUNTIME_WEBHOOK_SIGN_H

#include <stddef.h>

#define WEBHOOK_SIGNATURE_HEX_LEN 65    /* 64 hex chars + NUL */
#define WEBHOOK_SIGNATURE_E2B_LEN 45    /* 43 base64 chars + NUL */
#define WEBHOOK_SECRET_PREFIX "whsec_"
#define WEBHOOK_SECRET_LEN 50           /* "whsec_" + 43 base64url chars + NUL */

void webhook_signature_hex(const char *secret, const void *body, size_t len,
                           char out[WEBHOOK_SIGNATURE_HEX_LEN]);
void webhook_signature_e2b(const char *secret, const void *body, size_t len,
                           char out[WEBHOOK_SIGNATURE_E2B_LEN]);
/* A new secret: "whsec_" + 32 random bytes in unpadded base64url. */
void webhook_secret_new(char out[WEBHOOK_SECRET_LEN]);

#endif
