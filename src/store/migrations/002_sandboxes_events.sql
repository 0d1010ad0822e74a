-- 002: sandboxes and their lifecycle events.
-- A sandbox row is written before the sandbox is announced and updated on
-- every state change; stopped rows are kept for history. Events get a
-- monotonic seq so a later webhook outbox can reference and page by it.
-- template_id is plain text: templates get their own table later.

CREATE TABLE sandboxes (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    template_id    TEXT NOT NULL,
    status         TEXT NOT NULL
                   CHECK (status IN ('creating', 'running', 'paused', 'stopped', 'error')),
    metadata_json  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata_json)),
    env_json       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(env_json)),
    started_at     INTEGER NOT NULL,
    end_at         INTEGER NOT NULL,
    paused_at      INTEGER NOT NULL DEFAULT 0,
    cpu_count      INTEGER NOT NULL,
    memory_mb      INTEGER NOT NULL,
    disk_mb        INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX sandboxes_org_started ON sandboxes(org_id, started_at);
CREATE INDEX sandboxes_status ON sandboxes(status);

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    sandbox_id   TEXT NOT NULL DEFAULT '',
    template_id  TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL,
    data_json    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data_json)),
    created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX events_org_created ON events(org_id, created_at);
CREATE INDEX events_sandbox ON events(sandbox_id, created_at);
