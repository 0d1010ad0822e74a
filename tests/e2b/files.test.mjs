// The unmodified `e2b` SDK's sandbox.files against a real `sandbase serve`:
// envd's GET/POST /files (write of a string, bytes, a Blob, a stream, gzip,
// many files; read as text, bytes, blob and stream), the filesystem.
// Filesystem RPCs (list with depth, exists, getInfo, rename, remove,
// makeDir), watchDir (recursive too), and uploadUrl()/downloadUrl() of a
// secure and of an unsecured sandbox fetched with plain fetch(). Every
// write is checked through another road (a read, a list, or SandBase's own
// REST exec), so a route that only answered 200 would fail.
//
// Run by tests/integration/test_e2b_sdk.py (E2B_API_URL, E2B_SANDBOX_URL,
// E2B_API_KEY, SANDBASE_KEY). Nothing here leaves 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { gzipSync } from 'node:zlib'
import {
  Sandbox, FileNotFoundError, InvalidArgumentError, AuthenticationError, FileType,
} from 'e2b'

const API = process.env.E2B_API_URL
for (const name of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'SANDBASE_KEY'])
  assert.ok(process.env[name], `${name} must be set (see tests/integration/test_e2b_sdk.py)`)
assert.ok(API.startsWith('http://127.0.0.1:'), 'the SDK must talk to the local server only')

async function create(t, opts = {}) {
  const sbx = await Sandbox.create('base', opts)
  t.after(() => Sandbox.kill(sbx.sandboxId).catch(() => {}))
  return sbx
}

// SandBase's synchronous exec, to look at the sandbox by another road.
async function sh(id, script, user = 'user') {
  const r = await fetch(`${API}/sandboxes/${id}/processes`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${process.env.SANDBASE_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ cmd: 'sh', args: ['-c', script], user }),
  })
  assert.equal(r.status, 200, await r.clone().text())
  return (await r.json()).stdout
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

test('write and read a string, bytes, a Blob and a stream; read as text, bytes, blob, stream', async (t) => {
  const sbx = await create(t)
  const info = await sbx.files.write('/tmp/e2b/a/hello.txt', 'hello from the sdk\n')
  assert.equal(info.path, '/tmp/e2b/a/hello.txt')
  assert.equal(info.name, 'hello.txt')
  assert.equal(await sbx.files.read('/tmp/e2b/a/hello.txt'), 'hello from the sdk\n')
  // parents were made, and everything is the user's
  assert.equal(await sh(sbx.sandboxId, 'stat -c %U /tmp/e2b /tmp/e2b/a /tmp/e2b/a/hello.txt'), 'user\nuser\nuser\n')

  const bytes = new Uint8Array(70000).map((_, i) => (i * 7) & 0xff)
  await sbx.files.write('bin.dat', bytes)         // relative: the user's home
  const back = await sbx.files.read('/home/user/bin.dat', { format: 'bytes' })
  assert.ok(back instanceof Uint8Array)
  assert.deepEqual(Buffer.from(back), Buffer.from(bytes))

  await sbx.files.write('/tmp/e2b/blob.txt', new Blob(['bl', 'ob']))
  const blob = await sbx.files.read('/tmp/e2b/blob.txt', { format: 'blob' })
  assert.equal(await blob.text(), 'blob')

  // a ReadableStream goes as application/octet-stream (envd >= 0.5.7)
  const chunks = ['str', 'eamed ', 'data']
  const stream = new ReadableStream({
    pull(c) { const n = chunks.shift(); if (n) c.enqueue(new TextEncoder().encode(n)); else c.close() },
  })
  await sbx.files.write('/tmp/e2b/stream.txt', stream)
  const rs = await sbx.files.read('/tmp/e2b/stream.txt', { format: 'stream' })
  let text = ''
  for await (const piece of rs) text += new TextDecoder().decode(piece)
  assert.equal(text, 'streamed data')

  // gzip: true compresses the body and sends Content-Encoding: gzip
  const big = 'compressible line\n'.repeat(50000)
  await sbx.files.write('/tmp/e2b/g.txt', big, { gzip: true })
  assert.equal(await sh(sbx.sandboxId, 'wc -c < /tmp/e2b/g.txt'), `${big.length}\n`)
  assert.equal(await sbx.files.read('/tmp/e2b/g.txt'), big)

  // an empty file
  await sbx.files.write('/tmp/e2b/empty', '')
  assert.equal(await sbx.files.read('/tmp/e2b/empty'), '')
  // overwrite replaces
  await sbx.files.write('/tmp/e2b/a/hello.txt', 'second')
  assert.equal(await sbx.files.read('/tmp/e2b/a/hello.txt'), 'second')
})

test('writeFiles: many files in one multipart request, each to its full path', async (t) => {
  const sbx = await create(t)
  const files = Array.from({ length: 12 }, (_, i) => ({ path: `/tmp/many/d${i % 3}/f${i}.txt`, data: `file ${i}` }))
  const infos = await sbx.files.write(files)
  assert.equal(infos.length, 12)
  assert.deepEqual(infos.map((f) => f.path), files.map((f) => f.path))
  for (const f of files) assert.equal(await sbx.files.read(f.path), f.data)
  assert.equal(await sh(sbx.sandboxId, 'find /tmp/many -type f | wc -l'), '12\n')
})

test('read of a missing file is FileNotFoundError; a directory is InvalidArgumentError', async (t) => {
  const sbx = await create(t)
  await assert.rejects(sbx.files.read('/tmp/does/not/exist'), FileNotFoundError)
  await assert.rejects(sbx.files.read('/tmp'), InvalidArgumentError)
})

test('user: root writes root-owned files; user cannot write where root owns', async (t) => {
  const sbx = await create(t)
  await sbx.files.write('/root/secret.txt', 'root only', { user: 'root' })
  assert.equal(await sh(sbx.sandboxId, 'stat -c %U:%a /root/secret.txt', 'root'), 'root:644\n')
  assert.equal(await sbx.files.read('/root/secret.txt', { user: 'root' }), 'root only')
  await assert.rejects(sbx.files.write('/root/x.txt', 'no', { user: 'user' }))
  assert.equal(await sh(sbx.sandboxId, 'test -e /root/x.txt && echo yes || echo no', 'root'), 'no\n')
  await assert.rejects(sbx.files.read('/root/secret.txt'))      // 0700 /root, as user
})

test('list with depth, exists, getInfo, makeDir, rename, remove', async (t) => {
  const sbx = await create(t)
  await sh(sbx.sandboxId, 'mkdir -p /tmp/l/sub/deep && echo -n 12345 > /tmp/l/five && echo x > /tmp/l/sub/deep/x && ln -s /tmp/l/five /tmp/l/link && ln -s /nowhere /tmp/l/dangling')
  const one = await sbx.files.list('/tmp/l')
  assert.deepEqual(one.map((e) => e.name).sort(), ['five', 'link', 'sub'])   // the dangling link is dropped by the SDK
  const five = one.find((e) => e.name === 'five')
  assert.equal(five.type, FileType.FILE)
  assert.equal(five.size, 5)
  assert.equal(five.path, '/tmp/l/five')
  assert.equal(five.owner, 'user')
  assert.equal(five.permissions, '-rw-r--r--')
  assert.equal(five.mode, 0o644)
  assert.ok(five.modifiedTime instanceof Date && Math.abs(five.modifiedTime - Date.now()) < 60_000)
  const link = one.find((e) => e.name === 'link')
  assert.equal(link.type, FileType.FILE)          // a symlink's type is its target's
  assert.equal(link.symlinkTarget, '/tmp/l/five')
  assert.match(link.permissions, /^L/)
  assert.equal(one.find((e) => e.name === 'sub').type, FileType.DIR)
  const deep = await sbx.files.list('/tmp/l', { depth: 3 })
  assert.ok(deep.some((e) => e.path === '/tmp/l/sub/deep/x'), JSON.stringify(deep.map((e) => e.path)))
  assert.ok(!(await sbx.files.list('/tmp/l', { depth: 2 })).some((e) => e.path === '/tmp/l/sub/deep/x'))
  await assert.rejects(sbx.files.list('/tmp/l/nope'), FileNotFoundError)
  await assert.rejects(sbx.files.list('/tmp/l/five'), InvalidArgumentError)

  assert.equal(await sbx.files.exists('/tmp/l/five'), true)
  assert.equal(await sbx.files.exists('/tmp/l/none'), false)
  const info = await sbx.files.getInfo('/tmp/l/sub')
  assert.equal(info.type, FileType.DIR)
  assert.equal(info.name, 'sub')
  assert.equal(info.permissions[0], 'd')
  await assert.rejects(sbx.files.getInfo('/tmp/l/none'), FileNotFoundError)

  assert.equal(await sbx.files.makeDir('/tmp/l/new/a/b'), true)     // parents too
  assert.equal(await sbx.files.makeDir('/tmp/l/new/a/b'), false)    // exists
  assert.equal(await sh(sbx.sandboxId, 'stat -c %F:%U /tmp/l/new/a/b'), 'directory:user\n')
  await assert.rejects(sbx.files.makeDir('/tmp/l/five'), InvalidArgumentError)

  const moved = await sbx.files.rename('/tmp/l/five', '/tmp/l/moved/into/five2')
  assert.equal(moved.path, '/tmp/l/moved/into/five2')
  assert.equal(moved.type, FileType.FILE)
  assert.equal(await sbx.files.read('/tmp/l/moved/into/five2'), '12345')
  assert.equal(await sbx.files.exists('/tmp/l/five'), false)
  await assert.rejects(sbx.files.rename('/tmp/l/none', '/tmp/l/x'), FileNotFoundError)

  await sbx.files.remove('/tmp/l/sub')                // recursive
  assert.equal(await sbx.files.exists('/tmp/l/sub'), false)
  await sbx.files.remove('/tmp/l/sub')                // a missing path is fine
  assert.equal(await sh(sbx.sandboxId, 'ls /tmp/l | sort | tr "\\n" " "'), 'dangling link moved new ')
})

test('paths cannot leave the sandbox: .. and symlinks to / resolve inside it', async (t) => {
  const sbx = await create(t)
  await sh(sbx.sandboxId, 'ln -s / /tmp/rootlink && ln -s ../../../../../../etc /tmp/up')
  // the sandbox's own /etc/hostname, never the host's
  const sandboxHost = await sh(sbx.sandboxId, 'cat /etc/hostname')
  assert.equal(await sbx.files.read('/tmp/rootlink/etc/hostname'), sandboxHost)
  assert.equal(await sbx.files.read('/tmp/up/hostname'), sandboxHost)
  await sbx.files.write('/tmp/up/escape-test', 'inside', { user: 'root' })
  assert.equal(await sh(sbx.sandboxId, 'cat /etc/escape-test'), 'inside')
  await assert.rejects(sbx.files.read('/tmp/../../etc/hostname'), InvalidArgumentError)
})

test('watchDir streams create, write and remove events; recursive sees subdirectories', async (t) => {
  const sbx = await create(t)
  await sbx.files.makeDir('/tmp/w/sub')
  const events = []
  const handle = await sbx.files.watchDir('/tmp/w', (e) => events.push(e))
  const deepEvents = []
  const deep = await sbx.files.watchDir('/tmp/w', (e) => deepEvents.push(e), { recursive: true })
  await sbx.files.write('/tmp/w/new.txt', 'x')
  await sbx.files.write('/tmp/w/sub/inner.txt', 'y')
  await sbx.files.remove('/tmp/w/new.txt')
  for (let i = 0; i < 100 && !(events.some((e) => e.type === 'remove') && deepEvents.some((e) => e.name === 'sub/inner.txt')); i++)
    await sleep(50)
  await handle.stop()
  await deep.stop()
  const names = events.map((e) => `${e.type}:${e.name}`)
  assert.ok(names.includes('create:new.txt'), names.join(','))
  assert.ok(names.includes('remove:new.txt'), names.join(','))
  assert.ok(!names.some((n) => n.endsWith('inner.txt')), 'a flat watch does not see subdirectories')
  assert.ok(deepEvents.some((e) => e.name === 'sub/inner.txt' && e.type === 'create'),
    deepEvents.map((e) => `${e.type}:${e.name}`).join(','))
  await assert.rejects(sbx.files.watchDir('/tmp/w/none', () => {}), FileNotFoundError)
})

test('uploadUrl and downloadUrl of a secure sandbox are signed; fetched as they are; tampering and expiry are refused', async (t) => {
  const sbx = await create(t)                 // SDK 2.x creates secure sandboxes
  assert.ok(sbx.envdAccessToken)
  // plain fetch(), no header: the signature names the sandbox
  const up = await sbx.uploadUrl('/tmp/signed/up.txt')
  assert.match(up, /signature=v1_/)
  const form = new FormData()
  form.append('file', new Blob(['signed upload']), 'up.txt')
  let r = await fetch(up, { method: 'POST', body: form })
  assert.equal(r.status, 200, await r.clone().text())
  assert.equal((await r.json())[0].path, '/tmp/signed/up.txt')
  const down = await sbx.downloadUrl('/tmp/signed/up.txt')
  r = await fetch(down)
  assert.equal(r.status, 200)
  assert.equal(await r.text(), 'signed upload')
  // the read signature does not write, and a path changed after signing is refused
  r = await fetch(down, { method: 'POST', body: form })
  assert.equal(r.status, 401)
  r = await fetch(down.replace('up.txt', 'other.txt'))
  assert.equal(r.status, 401)
  // another sandbox's id with this sandbox's signature: refused
  const other = await create(t)
  r = await fetch(down, { headers: { 'E2b-Sandbox-Id': other.sandboxId } })
  assert.equal(r.status, 401)
  // no signature and no token: refused
  r = await fetch(`${API}/files?path=/tmp/signed/up.txt`, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId } })
  assert.equal(r.status, 401)
  // with an expiration: fine now, refused once passed
  const soon = await sbx.downloadUrl('/tmp/signed/up.txt', { useSignatureExpiration: 2 })
  assert.match(soon, /signature_expiration=\d+/)
  assert.equal((await fetch(soon)).status, 200)
  const past = new URL(soon)
  past.searchParams.set('signature_expiration', String(Math.floor(Date.now() / 1000) - 10))
  assert.equal((await fetch(past)).status, 401)    // changed: the signature covers it
  await sleep(3500)
  r = await fetch(soon)
  assert.equal(r.status, 401)
  assert.match((await r.json()).message, /expired/)
  // as root, signed for root
  const rootUp = await sbx.uploadUrl('/root/r.txt', { user: 'root' })
  const f2 = new FormData()
  f2.append('file', new Blob(['as root']), 'r.txt')
  assert.equal((await fetch(rootUp, { method: 'POST', body: f2 })).status, 200)
  assert.equal(await sh(sbx.sandboxId, 'stat -c %U /root/r.txt; cat /root/r.txt', 'root'), 'root\nas root')
})

test('uploadUrl and downloadUrl of an unsecured sandbox need no signature', async (t) => {
  // the SDK always asks for a secure sandbox: this one comes from E2B's REST API
  const made = await fetch(`${API}/v2/sandboxes`, {
    method: 'POST',
    headers: { 'X-API-KEY': process.env.E2B_API_KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ templateID: 'base', secure: false }),
  })
  assert.equal(made.status, 201, await made.clone().text())
  const id = (await made.json()).sandboxID
  t.after(() => Sandbox.kill(id).catch(() => {}))
  const sbx = await Sandbox.connect(id)
  assert.ok(!sbx.envdAccessToken)
  // no signature to name the sandbox by: the URL needs the header a proxy would add
  const hdr = { 'E2b-Sandbox-Id': sbx.sandboxId }
  const up = await sbx.uploadUrl('/tmp/open.txt')
  assert.doesNotMatch(up, /signature/)
  const form = new FormData()
  form.append('file', new Blob(['open']), 'open.txt')
  assert.equal((await fetch(up, { method: 'POST', body: form, headers: hdr })).status, 200)
  const r = await fetch(await sbx.downloadUrl('/tmp/open.txt'), { headers: hdr })
  assert.equal(await r.text(), 'open')
  await assert.rejects(sbx.downloadUrl('/tmp/open.txt', { useSignatureExpiration: 10 }), InvalidArgumentError)
})

test('a secure sandbox refuses the SDK without its token', async (t) => {
  const sbx = await create(t)
  await sbx.files.write('/tmp/tok.txt', 'x')
  // a handle with a wrong token is refused by the RPCs and /files alike
  const wrong = new Sandbox({ sandboxId: sbx.sandboxId, envdAccessToken: 'f'.repeat(64), envdVersion: '0.5.7' })
  await assert.rejects(wrong.files.read('/tmp/tok.txt'), AuthenticationError)
  await assert.rejects(wrong.files.list('/tmp'), AuthenticationError)
})
