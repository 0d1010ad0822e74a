/*
 * curl_api.c - the dlopen of libcurl (curl_api.h): once per process, every
 * symbol resolved up front so a missing one fails at load, not mid-call.
 * The handle is never closed: curl keeps threads and state of its own.
 */
#include "runtime/curl_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

static struct sb_curl_api api;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256];

/* Each member and the symbol it is loaded from, in struct order. */
static const struct {
    size_t offset;
    const char *symbol;
} symbols[] = {
#define SYM(member) {offsetof(struct sb_curl_api, member), "curl_" #member}
    SYM(global_init),      SYM(global_cleanup),    SYM(easy_init),      SYM(easy_cleanup),
    SYM(easy_setopt),      SYM(easy_getinfo),      SYM(easy_strerror),  SYM(multi_init),
    SYM(multi_cleanup),    SYM(multi_add_handle),  SYM(multi_remove_handle), SYM(multi_perform),
    SYM(multi_poll),       SYM(multi_wakeup),      SYM(multi_info_read), SYM(slist_append),
    SYM(slist_free_all),   SYM(url),               SYM(url_cleanup),    SYM(url_set),
    SYM(url_get),          SYM(free),
#undef SYM
};

static void load(void)
{
    void *lib = dlopen(SB_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(load_error, sizeof load_error, "cannot load %s (install the libcurl4 package): %s",
                 SB_CURL_SONAME, dlerror());
        return;
    }
    struct sb_curl_api loaded;
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *fn = dlsym(lib, symbols[i].symbol);
        if (!fn) {
            snprintf(load_error, sizeof load_error, "%s has no %s: libcurl 7.68 or newer is needed",
                     SB_CURL_SONAME, symbols[i].symbol);
            return;     /* the handle stays open: harmless, and dlclose of curl is not */
        }
        *(void **)((char *)&loaded + symbols[i].offset) = fn;
    }
    api = loaded;
}

const struct sb_curl_api *curl_api(struct sb_err *err)
{
    pthread_once(&load_once, load);
    if (load_error[0]) {
        sb_err_set(err, 500, "%s", load_error);
        return NULL;
    }
    return &api;
}
