// The unmodified `e2b` SDK (pinned in package.json) against a real
// `sandbase serve` with real sandboxes: the control plane (create, connect,
// list with paging and filters, getInfo, setTimeout, pause, kill), envd's
// GET /health (isRunning) and Process/List (commands.list), the secure
// sandbox's access token, and the SDK's own errors for a bad key, an
// unknown or killed sandbox and the org's cap.
//
// Run by tests/integration/test_e2b_sdk.py, which starts the server and sets
// E2B_API_URL and E2B_SANDBOX_URL (both the server: one port), E2B_API_KEY
// (a key written e2b_...), SANDBASE_KEY (the same key as sk-sb-..., for
// SandBase's REST exec), E2B_CAP_KEY and E2B_CAP (another org's key and the
// server's per-org cap). Nothing here leaves 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  Sandbox, AuthenticationError, NotFoundError, SandboxNotFoundError, RateLimitError,
} from 'e2b'

const API = process.env.E2B_API_URL
for (const name of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'SANDBASE_KEY', 'E2B_CAP_KEY', 'E2B_CAP'])
  assert.ok(process.env[name], `${name} must be set (see tests/integration/test_e2b_sdk.py)`)
assert.ok(API.startsWith('http://127.0.0.1:'), 'the SDK must talk to the local server only')

// A sandbox of the test t, killed when t ends.
async function create(t, opts = {}) {
  const sbx = await Sandbox.create('base', opts)
  t.after(() => Sandbox.kill(sbx.sandboxId).catch(() => {}))
  return sbx
}

// Every page of a paginator, and each page's size.
async function allPages(paginator) {
  const items = []
  const sizes = []
  while (paginator.hasNext) {
    const page = await paginator.nextItems()
    sizes.push(page.length)
    items.push(...page)
  }
  return { items, sizes }
}

// SandBase's synchronous exec (this server's REST API), to have a process
// running while envd lists them.
function sandbaseExec(id, cmd, args) {
  return fetch(`${API}/sandboxes/${id}/processes`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${process.env.SANDBASE_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ cmd, args }),
  })
}

test('create returns a usable secure sandbox and getInfo describes it', async (t) => {
  const before = Date.now()
  const sbx = await create(t, { metadata: { suite: 'create', who: 'sdk' }, envs: { A: '1' }, timeoutMs: 120_000 })
  assert.match(sbx.sandboxId, /^sbx_[a-z2-7]{20}$/)
  // SDK 2.x secures every sandbox: the token came back and is sent to envd.
  assert.match(sbx.envdAccessToken, /^[0-9a-f]{64}$/)
  const info = await sbx.getInfo()
  assert.equal(info.sandboxId, sbx.sandboxId)
  assert.equal(info.templateId, 'base')
  assert.equal(info.state, 'running')
  assert.deepEqual(info.metadata, { suite: 'create', who: 'sdk' })
  assert.equal(info.envdVersion, '0.5.7')
  assert.ok(info.cpuCount > 0 && info.memoryMB > 0)
  assert.ok(info.startedAt.getTime() >= before - 2000 && info.startedAt.getTime() <= Date.now() + 2000)
  const ttl = info.endAt.getTime() - info.startedAt.getTime()
  assert.ok(ttl > 110_000 && ttl < 130_000, `endAt - startedAt = ${ttl} ms`)
  assert.equal(await sbx.isRunning(), true)
  // the same info by id
  assert.equal((await Sandbox.getInfo(sbx.sandboxId)).templateId, 'base')
})

test('commands.list is envd Process/List over the sandbox: it shows a running process', async (t) => {
  const sbx = await create(t)
  assert.deepEqual(await sbx.commands.list(), [])
  const run = sandbaseExec(sbx.sandboxId, 'sleep', ['3'])
  let seen = null
  for (let i = 0; i < 100 && !seen; i++) {
    seen = (await sbx.commands.list()).find((p) => p.cmd === 'sleep')
    if (!seen) await new Promise((r) => setTimeout(r, 50))
  }
  assert.ok(seen, 'the running sleep was never listed')
  assert.deepEqual(seen.args, ['3'])
  assert.ok(Number.isInteger(seen.pid) && seen.pid > 1)
  const res = await run
  assert.equal(res.status, 200, await res.text())
  assert.deepEqual(await sbx.commands.list(), [])
})

test('envd refuses a wrong access token: AuthenticationError, and 401 on the wire', async (t) => {
  const sbx = await create(t)
  const good = sbx.envdAccessToken
  sbx.envdAccessToken = 'f'.repeat(64)
  await assert.rejects(sbx.commands.list(), AuthenticationError)
  sbx.envdAccessToken = good
  assert.deepEqual(await sbx.commands.list(), [])
  const rpc = (headers) => fetch(`${process.env.E2B_SANDBOX_URL}/process.Process/List`, {
    method: 'POST', body: '{}',
    headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': sbx.sandboxId, ...headers },
  })
  const missing = await rpc({})
  assert.equal(missing.status, 401)
  assert.equal((await missing.json()).code, 'unauthenticated')
  assert.equal((await rpc({ 'X-Access-Token': good })).status, 200)
  // /health needs no token
  const health = await fetch(`${process.env.E2B_SANDBOX_URL}/health`, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId } })
  assert.equal(health.status, 204)
})

test('Sandbox.list pages with limit and nextToken and filters by metadata and state', async (t) => {
  const suite = `list-${process.pid}-${Date.now()}`
  const ids = []
  for (let i = 0; i < 3; i++) ids.push((await create(t, { metadata: { suite, n: String(i) } })).sandboxId)
  const { items, sizes } = await allPages(Sandbox.list({ query: { metadata: { suite } }, limit: 2 }))
  assert.deepEqual(sizes, [2, 1])
  assert.deepEqual(items.map((s) => s.sandboxId).sort(), [...ids].sort())
  for (const s of items) {
    assert.equal(s.state, 'running')
    assert.equal(s.metadata.suite, suite)
    assert.equal(s.templateId, 'base')
  }
  // newest first by default, oldest first with order asc
  assert.deepEqual(items.map((s) => s.sandboxId), [...ids].reverse())
  const asc = await allPages(Sandbox.list({ query: { metadata: { suite } }, order: 'asc' }))
  assert.deepEqual(asc.items.map((s) => s.sandboxId), ids)
  // one key of two
  const one = await allPages(Sandbox.list({ query: { metadata: { suite, n: '1' } } }))
  assert.deepEqual(one.items.map((s) => s.sandboxId), [ids[1]])
  // metadata whose keys and values need encoding
  const odd = await create(t, { metadata: { 'a b': 'c&d=e', suite } })
  const found = await allPages(Sandbox.list({ query: { metadata: { 'a b': 'c&d=e' } } }))
  assert.deepEqual(found.items.map((s) => s.sandboxId), [odd.sandboxId])
  // state: paused ones only when asked for, both by default
  assert.equal(await Sandbox.pause(ids[0]), true)
  const paused = await allPages(Sandbox.list({ query: { metadata: { suite }, state: ['paused'] } }))
  assert.deepEqual(paused.items.map((s) => s.sandboxId), [ids[0]])
  const running = await allPages(Sandbox.list({ query: { metadata: { suite, n: '0' }, state: ['running'] } }))
  assert.deepEqual(running.items, [])
  const both = await allPages(Sandbox.list({ query: { metadata: { suite } } }))
  assert.equal(both.items.length, 4)
})

test('setTimeout moves endAt', async (t) => {
  const sbx = await create(t, { timeoutMs: 60_000 })
  await sbx.setTimeout(600_000)
  const info = await sbx.getInfo()
  const left = info.endAt.getTime() - Date.now()
  assert.ok(left > 590_000 && left < 610_000, `endAt is ${left} ms away`)
})

test('pause, pause again, resume with Sandbox.connect', async (t) => {
  const sbx = await create(t)
  assert.equal(await sbx.pause(), true)
  assert.equal(await sbx.betaPause(), false)     // already paused: 409 -> false
  assert.equal((await sbx.getInfo()).state, 'paused')
  assert.equal(await sbx.isRunning(), false)     // envd's /health answers 502 while paused
  const again = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 300_000 })
  assert.equal(again.sandboxId, sbx.sandboxId)
  assert.equal(again.envdAccessToken, sbx.envdAccessToken)
  assert.equal((await again.getInfo()).state, 'running')
  assert.equal(await again.isRunning(), true)
  assert.deepEqual(await again.commands.list(), [])
  // connecting to a running sandbox is fine too (instance connect)
  await again.connect()
  assert.equal((await again.getInfo()).state, 'running')
})

test("lifecycle onTimeout 'pause' (autoPause): the timeout pauses, connect resumes with files kept", async (t) => {
  const sbx = await create(t, { timeoutMs: 2000, lifecycle: { onTimeout: 'pause' } })
  assert.equal((await sbx.getInfo()).lifecycle?.onTimeout, 'pause')
  await sbx.commands.run('echo kept > /tmp/mark')
  const deadline = Date.now() + 15_000
  let state = 'running'
  while (state === 'running' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300))
    state = (await Sandbox.getInfo(sbx.sandboxId)).state
  }
  assert.equal(state, 'paused')
  const again = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 })
  assert.equal((await again.getInfo()).state, 'running')
  assert.equal((await again.commands.run('cat /tmp/mark')).stdout, 'kept\n')
})

test('kill, and the SDK errors for a killed and an unknown sandbox', async (t) => {
  const sbx = await create(t)
  assert.equal(await sbx.kill(), true)
  assert.equal(await Sandbox.kill(sbx.sandboxId), false)
  await assert.rejects(sbx.getInfo(), SandboxNotFoundError)
  await assert.rejects(Sandbox.connect(sbx.sandboxId), SandboxNotFoundError)
  await assert.rejects(sbx.setTimeout(60_000), SandboxNotFoundError)
  assert.equal(await sbx.isRunning(), false)
  const unknown = 'sbx_' + 'a'.repeat(20)
  await assert.rejects(Sandbox.getInfo(unknown), NotFoundError)
  await assert.rejects(Sandbox.pause(unknown), SandboxNotFoundError)
  assert.equal(await Sandbox.kill(unknown), false)
  await assert.rejects(Sandbox.connect(unknown), SandboxNotFoundError)
})

test('a bad API key is an AuthenticationError', async (t) => {
  const apiKey = 'e2b_' + '0'.repeat(40)
  await assert.rejects(Sandbox.create('base', { apiKey }), AuthenticationError)
  await assert.rejects(Sandbox.list({ apiKey }).nextItems(), AuthenticationError)
  await assert.rejects(Sandbox.getInfo('sbx_' + 'a'.repeat(20), { apiKey }), AuthenticationError)
})

test("another org's sandbox is not found", async (t) => {
  const mine = await create(t)
  const apiKey = process.env.E2B_CAP_KEY
  await assert.rejects(Sandbox.getInfo(mine.sandboxId, { apiKey }), SandboxNotFoundError)
  assert.equal(await Sandbox.kill(mine.sandboxId, { apiKey }), false)
  const theirs = await allPages(Sandbox.list({ apiKey }))
  assert.ok(!theirs.items.some((s) => s.sandboxId === mine.sandboxId))
  assert.equal(await mine.isRunning(), true)
})

test("the org's sandbox cap is a RateLimitError", async (t) => {
  const apiKey = process.env.E2B_CAP_KEY
  const cap = Number(process.env.E2B_CAP)
  const ids = []
  try {
    for (let i = 0; i < cap; i++) ids.push((await Sandbox.create('base', { apiKey })).sandboxId)
    const over = Sandbox.create('base', { apiKey }).then((sbx) => ids.push(sbx.sandboxId))
    await assert.rejects(over, RateLimitError)
  } finally {
    for (const id of ids) await Sandbox.kill(id, { apiKey })
  }
  assert.equal(ids.length, cap)
})
