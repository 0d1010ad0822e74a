/*
 * curl_api.h - libcurl, loaded with dlopen the first time a webhook needs
 * it, instead of linked into the binary.
 *
 * Why: `sandbase` is one binary, and every sandbox's shim is that binary.
 * Linked, libcurl and its dependency tree (OpenSSL's libcrypto alone is
 * ~400 KiB of relocated data per process) were loaded into every shim too,
 * nearly doubling an idle sandbox's memory (886 KiB -> 1.6 MiB PSS) for a
 * library only `serve` uses. Only the headers are used at build time.
 *
 * curl_api() is thread-safe (pthread_once); the table it returns lives as
 * long as the process. The members are the libcurl functions of the same
 * names without the "curl_" prefix.
 */
#ifndef SB_RUNTIME_CURL_API_H
#define SB_RUNTIME_CURL_API_H

#include <curl/curl.h>

#include "core/err.h"

#define SB_CURL_SONAME "libcurl.so.4"

struct sb_curl_api {
    CURLcode (*global_init)(long flags);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *easy);
    CURLcode (*easy_setopt)(CURL *easy, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *easy, CURLINFO info, ...);
    const char *(*easy_strerror)(CURLcode code);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *multi);
    CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_perform)(CURLM *multi, int *running);
    CURLMcode (*multi_poll)(CURLM *multi, struct curl_waitfd *extra, unsigned n, int timeout_ms, int *numfds);
    CURLMcode (*multi_wakeup)(CURLM *multi);
    CURLMsg *(*multi_info_read)(CURLM *multi, int *left);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *text);
    void (*slist_free_all)(struct curl_slist *list);
    CURLU *(*url)(void);
    void (*url_cleanup)(CURLU *url);
    CURLUcode (*url_set)(CURLU *url, CURLUPart part, const char *content, unsigned flags);
    CURLUcode (*url_get)(const CURLU *url, CURLUPart part, char **content, unsigned flags);
    void (*free)(void *p);
};

/* The loaded library, or NULL with err (500 naming the library and what
 * to install) when it cannot be loaded. */
const struct sb_curl_api *curl_api(struct sb_err *err);

#endif
