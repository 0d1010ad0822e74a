// Filesystem snapshots and fork through the unmodified `e2b` SDK:
// sbx.createSnapshot, Sandbox.create(snapshotId), Sandbox.listSnapshots
// (paged), Sandbox.deleteSnapshot and sbx.fork. SandBase's snapshots keep
// the filesystem only (no memory, no processes): a sandbox made from one
// boots fresh on the files.
//
// Run by tests/integration/test_e2b_sdk.py (E2B_API_URL, E2B_SANDBOX_URL,
// E2B_API_KEY, E2B_CAP_KEY: another org's key). Nothing here leaves 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox, SandboxNotFoundError } from 'e2b'

assert.ok(process.env.E2B_API_URL?.startsWith('http://127.0.0.1:'), 'the SDK must talk to the local server only')
const other = { apiKey: process.env.E2B_CAP_KEY }
assert.ok(other.apiKey, 'E2B_CAP_KEY must be set (see tests/integration/test_e2b_sdk.py)')

async function create(t, template = 'base', opts = {}) {
  const sbx = await Sandbox.create(template, opts)
  t.after(() => Sandbox.kill(sbx.sandboxId).catch(() => {}))
  return sbx
}

async function allSnapshots(opts) {
  const paginator = Sandbox.listSnapshots(opts)
  const items = []
  while (paginator.hasNext)
    items.push(...await paginator.nextItems())
  return items
}

test('createSnapshot, then Sandbox.create(snapshotId) sees the files', async (t) => {
  const sbx = await create(t)
  await sbx.files.write('/home/user/note.txt', 'from the source')
  const snap = await sbx.createSnapshot({ name: 'sdk-snap' })
  t.after(() => Sandbox.deleteSnapshot(snap.snapshotId).catch(() => {}))
  assert.match(snap.snapshotId, /^snap-[a-z2-7]{20}$/)
  assert.deepEqual(snap.names, ['sdk-snap'])
  assert.equal(await sbx.isRunning(), true)

  const copy = await create(t, snap.snapshotId)
  assert.equal(await copy.files.read('/home/user/note.txt'), 'from the source')
  await copy.files.write('/home/user/note.txt', 'changed in the copy')
  assert.equal(await sbx.files.read('/home/user/note.txt'), 'from the source')

  // another org neither sees nor uses it
  await assert.rejects(Sandbox.create(snap.snapshotId, other))
  const theirs = await allSnapshots(other)
  assert.ok(!theirs.some((s) => s.snapshotId === snap.snapshotId))
  assert.equal(await Sandbox.deleteSnapshot(snap.snapshotId, other), false)
})

test('listSnapshots pages and filters; deleteSnapshot is true, then false', async (t) => {
  const sbx = await create(t)
  const made = []
  for (let i = 0; i < 3; i++)
    made.push((await sbx.createSnapshot()).snapshotId)
  t.after(() => Promise.all(made.map((id) => Sandbox.deleteSnapshot(id).catch(() => {}))))
  const paginator = Sandbox.listSnapshots({ sandboxId: sbx.sandboxId, limit: 2 })
  const first = await paginator.nextItems()
  assert.equal(first.length, 2)
  assert.equal(paginator.hasNext, true)
  const second = await paginator.nextItems()
  assert.equal(second.length, 1)
  assert.equal(paginator.hasNext, false)
  assert.deepEqual([...first, ...second].map((s) => s.snapshotId), [...made].sort())
  const mine = await allSnapshots({ sandboxId: sbx.sandboxId })
  assert.deepEqual(mine.map((s) => s.snapshotId).sort(), [...made].sort())
  assert.deepEqual((await sbx.listSnapshots().nextItems()).map((s) => s.snapshotId).sort(), [...made].sort())

  assert.equal(await Sandbox.deleteSnapshot(made[0]), true)
  assert.equal(await Sandbox.deleteSnapshot(made[0]), false)
  await assert.rejects(Sandbox.create(made[0]))
  const left = await allSnapshots({ sandboxId: sbx.sandboxId })
  assert.deepEqual(left.map((s) => s.snapshotId).sort(), made.slice(1).sort())
})

test('fork makes independent sandboxes with the source\'s files', async (t) => {
  const sbx = await create(t)
  await sbx.files.write('/home/user/f.txt', 'forked')
  const forks = await sbx.fork({ count: 2 })
  for (const f of forks)
    if (!(f instanceof Error))
      t.after(() => f.kill().catch(() => {}))
  assert.equal(forks.length, 2)
  for (const f of forks) {
    assert.ok(!(f instanceof Error), String(f))
    assert.notEqual(f.sandboxId, sbx.sandboxId)
    assert.equal(await f.files.read('/home/user/f.txt'), 'forked')
    const r = await f.commands.run('id -un')
    assert.equal(r.stdout, 'user\n')
  }
  await forks[0].files.write('/home/user/f.txt', 'zero')
  assert.equal(await forks[1].files.read('/home/user/f.txt'), 'forked')
  assert.equal(await sbx.files.read('/home/user/f.txt'), 'forked')
  const info = await forks[0].getInfo()
  t.after(() => Sandbox.deleteSnapshot(info.templateId).catch(() => {}))

  await assert.rejects(Sandbox.fork('sbx_aaaaaaaaaaaaaaaaaaaa'), SandboxNotFoundError)
})
