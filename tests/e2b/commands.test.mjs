// The unmodified `e2b` SDK's commands and pty modules against a real
// `sandbase serve` with real sandboxes: envd's process.Process Start,
// Connect, List, SendInput, CloseStdin, SendSignal and Update as the SDK
// calls them (spec/e2b-protocol.md §5.1-5.4), and the SDK's own errors
// (CommandExitError with the output, TimeoutError, NotFoundError).
//
// Run by tests/integration/test_e2b_sdk.py, which starts the server and sets
// E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY (see control_plane.test.mjs).
// The `base` template of the tests is built `--from host`: /bin/bash and the
// host's tools, users `user` (the default) and `root`. Nothing here leaves
// 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox, CommandExitError, TimeoutError, NotFoundError } from 'e2b'

for (const name of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY'])
  assert.ok(process.env[name], `${name} must be set (see tests/integration/test_e2b_sdk.py)`)
assert.ok(process.env.E2B_API_URL.startsWith('http://127.0.0.1:'), 'the SDK must talk to the local server only')

// A sandbox of the test t, killed when t ends.
async function create(t) {
  const sbx = await Sandbox.create('base')
  t.after(() => Sandbox.kill(sbx.sandboxId).catch(() => {}))
  return sbx
}

// Resolves once cond() holds (polled), or fails after ms.
async function until(what, cond, ms = 10_000) {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

const listed = async (sbx, pid) => (await sbx.commands.list()).some((p) => p.pid === pid)

test('commands.run returns stdout, stderr and exitCode, and streams them to the callbacks', async (t) => {
  const sbx = await create(t)
  const outs = []
  const errs = []
  const res = await sbx.commands.run('echo hello; echo oops >&2; printf "\\303\\251t\\303\\251\\n"', {
    onStdout: (d) => outs.push(d), onStderr: (d) => errs.push(d),
  })
  assert.equal(res.exitCode, 0)
  assert.equal(res.stdout, 'hello\nété\n')
  assert.equal(res.stderr, 'oops\n')
  assert.equal(res.error, undefined)
  assert.equal(outs.join(''), res.stdout)
  assert.equal(errs.join(''), res.stderr)
})

test('commands.run takes envs, cwd and user', async (t) => {
  const sbx = await create(t)
  const res = await sbx.commands.run('echo "$FOO|$(pwd)|$(id -un)|$HOME"', { envs: { FOO: 'bar baz' }, cwd: '/tmp', user: 'root' })
  assert.equal(res.stdout, 'bar baz|/tmp|root|/root\n')
  const plain = await sbx.commands.run('id -u')
  assert.notEqual(plain.stdout.trim(), '0', 'the default user is not root')
  assert.equal((await sbx.commands.run('id -un', { user: 'user' })).stdout, (await sbx.commands.run('id -un')).stdout)
})

test('a command starts in the user\'s home, where files.write puts a relative path', async (t) => {
  const sbx = await create(t)
  assert.equal((await sbx.commands.run('pwd')).stdout, '/home/user\n')
  assert.equal((await sbx.commands.run('pwd', { user: 'root' })).stdout, '/root\n')
  await sbx.files.write('notes.txt', 'written by files.write')
  assert.equal((await sbx.commands.run('cat notes.txt')).stdout, 'written by files.write')
  await sbx.commands.run('mkdir -p work && echo in > work/f')
  assert.equal((await sbx.commands.run('cat f', { cwd: 'work' })).stdout, 'in\n')
  assert.equal((await sbx.commands.run('cat f', { cwd: '~/work' })).stdout, 'in\n')
})

test('a failing command throws CommandExitError with its output and exit code', async (t) => {
  const sbx = await create(t)
  await assert.rejects(sbx.commands.run('echo out; echo err >&2; exit 7'), (err) => {
    assert.ok(err instanceof CommandExitError, String(err))
    assert.equal(err.exitCode, 7)
    assert.equal(err.stdout, 'out\n')
    assert.equal(err.stderr, 'err\n')
    assert.equal(err.error, 'exit status 7')
    return true
  })
  await assert.rejects(sbx.commands.run('definitely-not-a-command-here'), (err) => {
    assert.ok(err instanceof CommandExitError)
    assert.equal(err.exitCode, 127)
    assert.match(err.stderr, /not found/)
    return true
  })
})

test('timeoutMs ends the command with TimeoutError and kills it', async (t) => {
  const sbx = await create(t)
  const t0 = Date.now()
  await assert.rejects(sbx.commands.run('echo started; sleep 30', { timeoutMs: 1000 }), TimeoutError)
  assert.ok(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`)
  await until('the timed-out command to be gone', async () => (await sbx.commands.list()).length === 0)
})

test('a background command: list, sendStdin, closeStdin, wait', async (t) => {
  const sbx = await create(t)
  const seen = []
  const h = await sbx.commands.run('cat; echo end', { background: true, stdin: true, onStdout: (d) => seen.push(d) })
  assert.ok(h.pid > 0)
  const procs = await sbx.commands.list()
  const mine = procs.find((p) => p.pid === h.pid)
  assert.ok(mine, JSON.stringify(procs))
  assert.equal(mine.cmd, '/bin/bash')
  assert.deepEqual(mine.args, ['-l', '-c', 'cat; echo end'])
  await sbx.commands.sendStdin(h.pid, 'abc\n')
  await until('the echoed stdin', () => seen.join('') === 'abc\n')
  await h.sendStdin('déf\n')
  await until('the second line', () => seen.join('') === 'abc\ndéf\n')
  await sbx.commands.closeStdin(h.pid)
  const res = await h.wait()
  assert.equal(res.exitCode, 0)
  assert.equal(res.stdout, 'abc\ndéf\nend\n')
  await until('the finished command to leave the list', async () => !(await listed(sbx, h.pid)))
})

test('commands.connect attaches to a running command and sees its output from the start', async (t) => {
  const sbx = await create(t)
  const h = await sbx.commands.run('echo one; read line; echo "got $line"', { background: true, stdin: true })
  await until('the first line', () => h.stdout === 'one\n')
  h.disconnect()        // the process runs on without its first stream
  assert.ok(await listed(sbx, h.pid))
  const chunks = []
  const again = await sbx.commands.connect(h.pid, { onStdout: (d) => chunks.push(d) })
  assert.equal(again.pid, h.pid)
  await until('the replayed output', () => again.stdout === 'one\n')
  await sbx.commands.sendStdin(h.pid, 'two\n')
  const res = await again.wait()
  assert.equal(res.stdout, 'one\ngot two\n')
  assert.equal(chunks.join(''), res.stdout)
  assert.equal(res.exitCode, 0)
})

test('kill ends a command with SIGKILL; killing it again, or an unknown pid, is false', async (t) => {
  const sbx = await create(t)
  const h = await sbx.commands.run('sleep 60', { background: true })
  assert.equal(await sbx.commands.kill(h.pid), true)
  await assert.rejects(h.wait(), (err) => {
    assert.ok(err instanceof CommandExitError, String(err))
    assert.equal(err.exitCode, -1)
    assert.equal(err.error, 'signal: killed')
    return true
  })
  await until('the killed command to leave the list', async () => !(await listed(sbx, h.pid)))
  assert.equal(await sbx.commands.kill(h.pid), false)
  assert.equal(await sbx.commands.kill(999999), false)
  const h2 = await sbx.commands.run('sleep 60', { background: true })
  assert.equal(await h2.kill(), true)
  await assert.rejects(h2.wait(), CommandExitError)
})

test('calls on an unknown process are NotFoundError', async (t) => {
  const sbx = await create(t)
  await assert.rejects(sbx.commands.sendStdin(999999, 'x'), NotFoundError)
  await assert.rejects(sbx.commands.closeStdin(999999), NotFoundError)
  await assert.rejects(sbx.commands.connect(999999), NotFoundError)
  await assert.rejects(sbx.pty.resize(999999, { cols: 10, rows: 10 }), NotFoundError)
})

test('pty: create, sendInput, resize, wait and kill', async (t) => {
  const sbx = await create(t)
  const dec = new TextDecoder()
  let out = ''
  const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += dec.decode(d, { stream: true }) } })
  assert.ok(term.pid > 0)
  assert.ok(await listed(sbx, term.pid), 'a terminal is listed')
  const enc = new TextEncoder()
  await sbx.pty.sendInput(term.pid, enc.encode('stty size; echo "T=$TERM"\n'))
  await until('the first size', () => out.includes('24 80') && out.includes('T=xterm-256color'))
  await sbx.pty.resize(term.pid, { cols: 100, rows: 30 })
  await sbx.pty.sendInput(term.pid, enc.encode('stty size; exit 3\n'))
  await until('the new size', () => out.includes('30 100'))
  await assert.rejects(term.wait(), (err) => err instanceof CommandExitError && err.exitCode === 3)

  const other = await sbx.pty.create({ cols: 40, rows: 10, onData: () => {}, user: 'root' })
  assert.equal(await sbx.pty.kill(other.pid), true)
  await assert.rejects(other.wait(), (err) => err instanceof CommandExitError && err.error === 'signal: killed')
  assert.equal(await sbx.pty.kill(other.pid), false)
})
