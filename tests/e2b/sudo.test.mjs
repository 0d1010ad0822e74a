// E2B code's habit, `sudo` as the default user without a password, through
// the unmodified SDK's commands.run in a sudo template (a `--from debian`
// build). Run by tests/integration/test_sudo.py, which builds the template
// and starts the server; E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY as in
// test_e2b_sdk.py. Nothing here leaves 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox, CommandExitError } from 'e2b'

assert.ok(process.env.E2B_API_URL?.startsWith('http://127.0.0.1:'), 'the SDK must talk to the local server only')

test('commands.run runs sudo as user without a password, as E2B code expects', async (t) => {
  const sbx = await Sandbox.create('base')
  t.after(() => sbx.kill().catch(() => {}))
  const who = await sbx.commands.run('id -un; sudo echo hi; sudo -n id -u')
  assert.equal(who.exitCode, 0)
  assert.equal(who.stdout, 'user\nhi\n0\n')
  assert.equal(who.stderr, '')
  // root reached through sudo is still the sandbox's root: mounting stays refused
  await assert.rejects(sbx.commands.run('sudo mount -t tmpfs none /mnt'), (err) => {
    assert.ok(err instanceof CommandExitError, String(err))
    assert.notEqual(err.exitCode, 0)
    return true
  })
})
