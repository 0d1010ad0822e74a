-- 004: webhooks and their delivery outbox.
-- A delivery row is written in the same transaction as the event it carries
-- (one per enabled webhook whose filter matches), so a crash can never leave
-- an event without its deliveries or a delivery without its event. Deleting
-- an event (retention) or a webhook takes its deliveries with it.
-- events_json is a JSON array of event types; '[]' means every type.
-- The signature secret is kept as given: HMAC needs the key itself.

CREATE TABLE webhooks (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    url            TEXT NOT NULL,
    resource_type  TEXT NOT NULL DEFAULT 'sandbox',
    events_json    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(events_json) AND json_type(events_json) = 'array'),
    enabled        INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    secret         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX webhooks_org ON webhooks(org_id, created_at);

-- status: pending (due at next_attempt_at) -> sending (claimed by the
-- delivery worker; back to pending at start-up) -> delivered | failed.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_seq        INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    sandbox_id       TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_attempt_at  INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER NOT NULL DEFAULT 0,
    last_duration_ms INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
-- Per webhook and sandbox in event order: a delivery waits for the earlier
-- ones of the same sandbox, and the deliveries route lists newest first.
CREATE INDEX webhook_deliveries_order ON webhook_deliveries(webhook_id, sandbox_id, event_seq);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_seq);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries(webhook_id, event_seq);
CREATE INDEX events_org_seq ON events(org_id, seq);
