// The unmodified `e2b` SDK's getMetrics (instance and static) against a real
// `sandbase serve`: E2B's SandboxMetric from the sandbox's cgroups and disk,
// the SDK's `start`/`end` range, and its errors for an unknown sandbox.
// getMetrics is gated at envdVersion 0.1.5, which the server reports.
//
// Run by tests/integration/test_e2b_sdk.py (the environment it sets is
// described in control_plane.test.mjs). Nothing here leaves 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox, SandboxNotFoundError } from 'e2b'

const API = process.env.E2B_API_URL
for (const name of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'SANDBASE_KEY'])
  assert.ok(process.env[name], `${name} must be set (see tests/integration/test_e2b_sdk.py)`)
assert.ok(API.startsWith('http://127.0.0.1:'), 'the SDK must talk to the local server only')

async function create(t) {
  const sbx = await Sandbox.create('base')
  t.after(() => Sandbox.kill(sbx.sandboxId).catch(() => {}))
  return sbx
}

// A shell script through SandBase's REST exec (envd's Process/Start is
// not this test's subject).
async function sh(id, script) {
  const res = await fetch(`${API}/sandboxes/${id}/processes`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${process.env.SANDBASE_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ cmd: '/bin/sh', args: ['-c', script] }),
  })
  const text = await res.text()
  assert.equal(res.status, 200, text)
  return JSON.parse(text)
}

function checkMetric(m, info) {
  assert.ok(m.timestamp instanceof Date && !Number.isNaN(m.timestamp.getTime()))
  assert.ok(Math.abs(m.timestamp.getTime() - Date.now()) < 60_000, `timestamp ${m.timestamp}`)
  assert.equal(m.cpuCount, info.cpuCount)
  assert.equal(m.memTotal, info.memoryMB * 1024 * 1024)
  assert.ok(m.memUsed > 0 && m.memUsed <= m.memTotal, `memUsed ${m.memUsed}`)
  assert.ok(m.memCache >= 0 && m.memCache <= m.memUsed)
  assert.ok(m.diskUsed > 0 && m.diskUsed < m.diskTotal, `disk ${m.diskUsed}/${m.diskTotal}`)
  assert.ok(m.cpuUsedPct >= 0 && m.cpuUsedPct <= 100)
}

test('getMetrics reports the sandbox\'s CPU, memory and disk as they change', async (t) => {
  const sbx = await create(t)
  const info = await sbx.getInfo()
  // getMetrics is gated at 0.1.5 (spec §2.8): the version must be past it
  const [maj, min, patch] = info.envdVersion.split('.').map(Number)
  assert.ok(maj > 0 || min > 1 || (min === 1 && patch >= 5), `envdVersion ${info.envdVersion} is below 0.1.5`)
  const [idle] = await sbx.getMetrics()
  checkMetric(idle, info)
  assert.ok(idle.cpuUsedPct < 10, `an idle sandbox uses ${idle.cpuUsedPct}%`)
  await sh(sbx.sandboxId, "(timeout 5 sh -c 'while :; do :; done') >/dev/null 2>&1 & " +
                          'head -c 30000000 /dev/urandom > /tmp/disk.bin')
  const all = await sbx.getMetrics()
  assert.equal(all.length, 1)
  const [loaded] = all
  checkMetric(loaded, info)
  assert.ok(loaded.cpuUsedPct > 10, `a busy loop shows only ${loaded.cpuUsedPct}%`)
  assert.ok(loaded.diskUsed >= idle.diskUsed + 25_000_000, `disk ${idle.diskUsed} -> ${loaded.diskUsed}`)
  // the static form, by id
  const [byId] = await Sandbox.getMetrics(sbx.sandboxId)
  checkMetric(byId, info)
})

test('getMetrics honours start and end: no samples outside the range', async (t) => {
  const sbx = await create(t)
  const hour = 3600_000
  assert.equal((await sbx.getMetrics({ start: new Date(Date.now() - hour), end: new Date(Date.now() + hour) })).length, 1)
  assert.deepEqual(await sbx.getMetrics({ end: new Date(Date.now() - hour) }), [])
  assert.deepEqual(await sbx.getMetrics({ start: new Date(Date.now() + hour) }), [])
})

test('getMetrics of an unknown or killed sandbox is SandboxNotFoundError', async (t) => {
  await assert.rejects(Sandbox.getMetrics('sbx_' + 'a'.repeat(20)), SandboxNotFoundError)
  const sbx = await create(t)
  await sbx.kill()
  await assert.rejects(sbx.getMetrics(), SandboxNotFoundError)
})
