/*
 * id.c - random ids (libsodium randombytes) and the rule for user-chosen
 * names. The clocks declared beside them in id.h are in clock.c, so a
 * program that only reads clocks (the shim) does not link libsodium.
 */
#include "core/id.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

void sb_id_new(const char *prefix, char *out, size_t len)
{
    unsigned char rnd[SB_ID_RANDOM_CHARS];
    size_t plen = strlen(prefix);
    if (len < plen + SB_ID_RANDOM_CHARS + 1) {
        if (len)
            out[0] = '\0';
        return;
    }
    randombytes_buf(rnd, sizeof rnd);
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < SB_ID_RANDOM_CHARS; i++)
        out[plen + i] = base32_alphabet[rnd[i] & 31];
    out[plen + SB_ID_RANDOM_CHARS] = '\0';
}

int sb_id_valid(const char *prefix, const char *s)
{
    size_t plen = strlen(prefix);
    if (!s || strncmp(s, prefix, plen) != 0 || strlen(s) != plen + SB_ID_RANDOM_CHARS)
        return 0;
    for (size_t i = plen; s[i]; i++)
        if (!strchr(base32_alphabet, s[i]))
            return 0;
    return 1;
}

int sb_name_valid(const char *name)
{
    if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
        return 0;
    size_t len = 0;
    for (const char *p = name; *p; p++, len++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
        if (!ok || len >= SB_NAME_MAX)
            return 0;
    }
    return 1;
}
