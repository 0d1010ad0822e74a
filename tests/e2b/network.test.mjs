// The unmodified `e2b` SDK's sbx.updateNetwork() (PUT /sandboxes/:id/network)
// against a real `sandbase serve` whose uplink is the test host of
// tests/integration/test_network.py (a network namespace on this machine:
// no packet leaves it), checked by traffic from inside the sandbox with
// sbx.commands.run('curl ...').
//
// Run by test_network.py's test_e2b_sdk_update_network, which starts the
// server and sets E2B_API_URL, E2B_SANDBOX_URL (both the server), E2B_API_KEY
// (a key written e2b_...), TEST_HOST (an address of the test host) and NAMED
// (what the test host's DNS answers for allowed.test).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox, SandboxNotFoundError } from 'e2b'

for (const name of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'TEST_HOST', 'NAMED'])
  assert.ok(process.env[name], `${name} must be set (see tests/integration/test_network.py)`)
assert.ok(process.env.E2B_API_URL.startsWith('http://127.0.0.1:'), 'the SDK must talk to the local server only')
const { TEST_HOST, NAMED } = process.env

async function create(t, opts = {}) {
  const sbx = await Sandbox.create('base', opts)
  t.after(() => Sandbox.kill(sbx.sandboxId).catch(() => {}))
  return sbx
}

// What the test host's web server answered, or BLOCKED.
async function fetchFrom(sbx, host) {
  const r = await sbx.commands.run(`curl -s -m 2 http://${host}:8080/ || echo BLOCKED`)
  return r.stdout.trim()
}

test('updateNetwork closes, opens by name and reopens a running sandbox', async (t) => {
  const sbx = await create(t)
  assert.equal(await fetchFrom(sbx, TEST_HOST), 'test host')
  await sbx.updateNetwork({ denyOut: ['0.0.0.0/0'] })
  assert.equal(await fetchFrom(sbx, TEST_HOST), 'BLOCKED')
  const info = await sbx.getInfo()
  assert.deepEqual(info.network?.denyOut, ['0.0.0.0/0'])

  await sbx.updateNetwork({ allowOut: ['allowed.test'], denyOut: ['0.0.0.0/0'] })
  assert.equal(await fetchFrom(sbx, 'allowed.test'), 'test host')
  assert.equal(await fetchFrom(sbx, TEST_HOST), 'BLOCKED')

  await sbx.updateNetwork({ allowInternetAccess: false })
  assert.equal(await fetchFrom(sbx, NAMED), 'BLOCKED')

  await sbx.updateNetwork({})        // omitted fields are cleared: open again
  assert.equal(await fetchFrom(sbx, TEST_HOST), 'test host')
  assert.equal(await fetchFrom(sbx, NAMED), 'test host')
})

test('a bad entry is refused naming it, and the rules stay', async (t) => {
  const sbx = await create(t)
  await sbx.updateNetwork({ denyOut: [NAMED] })
  await assert.rejects(sbx.updateNetwork({ denyOut: ['0.0.0.0/0', 'not-a-cidr'] }), /not-a-cidr/)
  assert.equal(await fetchFrom(sbx, TEST_HOST), 'test host')
  assert.equal(await fetchFrom(sbx, NAMED), 'BLOCKED')
})

test('a sandbox created without internet access can be given it', async (t) => {
  const sbx = await create(t, { allowInternetAccess: false })
  assert.equal(await fetchFrom(sbx, TEST_HOST), 'BLOCKED')
  await sbx.updateNetwork({ denyOut: [NAMED] })
  assert.equal(await fetchFrom(sbx, TEST_HOST), 'test host')
  assert.equal(await fetchFrom(sbx, NAMED), 'BLOCKED')
})

test('an unknown sandbox is SandboxNotFoundError', async () => {
  await assert.rejects(Sandbox.updateNetwork('sbx_aaaaaaaaaaaaaaaaaaaa', { denyOut: ['0.0.0.0/0'] }),
    SandboxNotFoundError)
})
