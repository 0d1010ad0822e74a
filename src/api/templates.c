/*
 * templates.c - GET /templates: the templates a key can use: every shared
 * (built) template and its own org's snapshots (private, "public": false);
 * other orgs' snapshots are never listed.
 */
#include "api/app.h"
#include "runtime/template.h"

void api_templates_list(struct sb_request *req)
{
    struct sb_app *app = api_app(req);
    struct sb_err err = {0};
    struct sb_template *list = NULL;
    size_t count = 0;
    if (template_list(app->cfg.data_dir, &list, &count, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < count; i++) {
        if (!template_visible(&list[i], req->org_id))
            continue;           /* another org's snapshot */
        struct sb_limits lim;
        template_effective_limits(&list[i], &app->cfg, &lim);
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:b, s:s, s:s}", "templateID",
                           list[i].name, "name", list[i].name, "kind", list[i].kind, "user",
                           list[i].user, "defaultTimeout", app->cfg.default_timeout_s, "cpuCount",
                           lim.cpu_count, "memoryMB", lim.memory_mb, "diskSizeMB", lim.disk_mb,
                           "public", !list[i].org_id[0], "buildStatus", "ready", "createdAt", list[i].created_at));
    }
    template_list_free(list, count);
    sb_respond_json(req, 200, arr);
}
