/*
 * utf8.c - UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF; see utf8.h): the check for client strings, and the lossy
 * copy used where program output becomes JSON.
 */
#include "core/utf8.h"

#include <stdlib.h>
#include <string.h>

size_t sb_utf8_sequence(const char *bytes, size_t left)
{
    const unsigned char *s = (const unsigned char *)bytes;
    unsigned char c = s[0];
    size_t need;
    unsigned int min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2; min = 0x80; cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3; min = 0x800; cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4; min = 0x10000; cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

int sb_utf8_valid(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = sb_utf8_sequence(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

json_t *sb_json_string_lossy(const char *bytes, size_t len)
{
    /* Fast path: already valid, no copy. */
    if (sb_utf8_valid(bytes, len))
        return json_stringn(bytes, len);
    /* Each invalid byte becomes 3 bytes of U+FFFD at worst. */
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t n = sb_utf8_sequence(bytes + i, len - i);
        if (n == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, bytes + i, n);
            o += n;
            i += n;
        }
    }
    json_t *str = json_stringn(out, o);
    free(out);
    return str;
}

size_t sb_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    for (int i = 0; i < 3 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; i++)
        n--;
    return n ? n : max;
}
