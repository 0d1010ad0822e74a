-- 006 (after 004 webhooks and 005 network): what an
-- E2B create said beyond SandBase's fields, and the envd access token of a
-- secure sandbox. e2b_json is the object src/e2b/ stores and reads back
-- ('' for a SandBase create); envd_token is '' for an unsecured sandbox.
-- The token is kept as given, not hashed: connect must hand it out again.
ALTER TABLE sandboxes ADD COLUMN e2b_json TEXT NOT NULL DEFAULT '';
ALTER TABLE sandboxes ADD COLUMN envd_token TEXT NOT NULL DEFAULT '';
