-- 005 (004 is the webhooks branch's): a sandbox's network settings (issue 12): egress on or off, allowOut,
-- denyOut, allowPublicTraffic and its address, as the JSON object
-- runtime/netpolicy.c writes; '' for sandboxes from before (loopback only).
ALTER TABLE sandboxes ADD COLUMN network_json TEXT NOT NULL DEFAULT '';
