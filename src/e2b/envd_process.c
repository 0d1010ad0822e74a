/*
 * envd_process.c - envd's process.Process service over the runtime's
 * process calls (runtime/registry_procs.h). Served: List. Start, Connect,
 * SendInput, StreamInput, SendSignal, CloseStdin and Update are to be
 * encodings of the same calls (Start and Connect over e2b/rpc_stream.c);
 * until then they are Connect's unimplemented.
 *
 * List answers envd's ListResponse: the running processes, each with its
 * pid (inside the sandbox), tag and config (cmd, args; envs is {} since the
 * shim does not report a process's environment, and cwd is left out).
 */
#include "api/app.h"
#include "e2b/e2b.h"
#include "e2b/envd.h"
#include "runtime/registry_procs.h"

/* ProcessInfo of one shim list entry (new reference), NULL if it is not running. */
static json_t *process_info(json_t *entry)
{
    json_t *argv = json_object_get(entry, "argv");
    if (!json_is_true(json_object_get(entry, "running")) || !json_is_array(argv) || !json_array_size(argv))
        return NULL;
    json_t *args = json_array();
    for (size_t i = 1; i < json_array_size(argv); i++)
        json_array_append(args, json_array_get(argv, i));
    json_t *config = json_pack("{s:O, s:o, s:{}}", "cmd", json_array_get(argv, 0), "args", args, "envs");
    json_t *info = json_pack("{s:o, s:O}", "config", config, "pid", json_object_get(entry, "pid"));
    json_t *tag = json_object_get(entry, "tag");
    if (info && json_is_string(tag))
        json_object_set(info, "tag", tag);
    return info;
}

static void on_list(void *arg, json_t *reply, const struct sb_err *err)
{
    struct sb_request *req = arg;
    if (!reply) {
        sb_request_complete_error(req, err);
        return;
    }
    json_t *processes = json_array();
    json_t *entry;
    size_t i;
    json_array_foreach(json_object_get(reply, "processes"), i, entry) {
        json_t *info = process_info(entry);
        if (info)
            json_array_append_new(processes, info);
    }
    sb_request_complete_json(req, 200, json_pack("{s:o}", "processes", processes));
}

void e2b_process_list(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    if (e2b_envd_sandbox(req, 1, &rec, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *msg = e2b_rpc_unary_request(req, &err);   /* ListRequest has no fields */
    int rc = msg ? registry_proc_list(api_app(req)->registry, rec.org_id, rec.id, on_list, req, &err) : -1;
    json_decref(msg);
    store_sandbox_rec_clear(&rec);
    if (rc < 0)
        sb_respond_error(req, &err);
    else
        sb_request_defer(req);  /* on_list never runs inside the call */
}
