/*
 * registry_procs.c - the processes of a live sandbox over its shim link
 * (see registry_procs.h). Holds nothing: each call is one shim request.
 */
#include "runtime/registry_procs.h"

#include "runtime/registry_internal.h"
#include "runtime/shim_link.h"

int registry_proc_list(struct sb_registry *reg, const char *org_id, const char *id, registry_reply_fn fn,
                       void *arg, struct sb_err *err)
{
    struct sb_sandbox_rec rec;
    if (!reg->links)
        return sb_err_set(err, 500, "processes: the registry is not serving on a loop");
    if (load_live(reg, org_id, id, &rec, err) < 0)
        return -1;
    struct shim_link *link = shim_link_get(reg->links, rec.id, err);
    store_sandbox_rec_clear(&rec);
    if (!link)
        return -1;
    return shim_link_call(link, json_pack("{s:s}", "op", "list"), fn, arg, err);
}
