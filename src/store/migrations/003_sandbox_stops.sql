-- 003: a stopped sandbox stays readable (GET /sandboxes/:id) until the
-- retention period ends, with when and why it stopped; failed creates are
-- not sandboxes at all, so their rows go.
ALTER TABLE sandboxes ADD COLUMN stopped_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN stop_reason TEXT NOT NULL DEFAULT '';

UPDATE sandboxes
   SET stopped_at = updated_at,
       stop_reason = coalesce((SELECT json_extract(e.data_json, '$.reason') FROM events e
                                WHERE e.sandbox_id = sandboxes.id
                                  AND e.type = 'sandbox.lifecycle.killed'
                                ORDER BY e.seq DESC LIMIT 1), '')
 WHERE status = 'stopped';

DELETE FROM sandboxes WHERE status = 'error';

CREATE INDEX sandboxes_stopped ON sandboxes(status, stopped_at);
