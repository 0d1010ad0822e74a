-- 007: what a sandbox's timeout does. 'kill' (every sandbox before, and
-- the default) stops it as before; 'pause' freezes it instead, as E2B's
-- autoPause (lifecycle.onTimeout "pause") asks, until a connect resumes it.
ALTER TABLE sandboxes ADD COLUMN on_timeout TEXT NOT NULL DEFAULT 'kill'
    CHECK (on_timeout IN ('kill', 'pause'));
