// The E2B SDK's command path against sandbase's own, in one run (issue 10):
// `commands.run('true')` through the unmodified `e2b` SDK (envd
// Process/Start: a Connect stream, `/bin/bash -l -c true` as the SDK always
// sends) beside SandBase's REST exec (POST /sandboxes/:id/processes) of
// `true` and of the same `/bin/bash -l -c true`, and a bare fork+exec of
// /bin/true (bench/spawn_baseline.c); then `Sandbox.create` through the SDK
// beside SandBase's POST /sandboxes. Prints medians and ratios.
//
// Usage: bench/e2b.sh (starts its own server); or by hand with E2B_API_URL,
// E2B_SANDBOX_URL, E2B_API_KEY, SANDBASE_KEY and SPAWN (the compiled
// baseline) set: node bench/e2b.mjs [N execs] [M creates]. Loopback only.
import { execFileSync } from 'node:child_process'
import { Sandbox } from '../tests/e2b/node_modules/e2b/dist/index.mjs'

const N = Number(process.argv[2] ?? 200)
const M = Number(process.argv[3] ?? 20)
const API = process.env.E2B_API_URL
for (const name of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'SANDBASE_KEY', 'SPAWN'])
  if (!process.env[name]) throw new Error(`${name} must be set (run bench/e2b.sh)`)
if (!API.startsWith('http://127.0.0.1:')) throw new Error('loopback only')

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length

async function timed(n, fn) {
  for (let i = 0; i < 5; i++) await fn()   // warm-up: connections, caches
  const ms = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    ms.push(performance.now() - t0)
  }
  return ms
}

const auth = { Authorization: `Bearer ${process.env.SANDBASE_KEY}`, 'Content-Type': 'application/json' }
async function restExec(id, cmd, args) {
  const r = await fetch(`${API}/sandboxes/${id}/processes`, { method: 'POST', headers: auth, body: JSON.stringify({ cmd, args }) })
  const body = await r.json()
  if (r.status !== 200 || body.exitCode !== 0) throw new Error(`REST exec: ${r.status} ${JSON.stringify(body)}`)
}

const row = (label, xs, base) => console.log(
  `${label.padEnd(46)} ${median(xs).toFixed(2).padStart(8)} ms  (mean ${mean(xs).toFixed(2)})` +
  (base ? `  ${(median(xs) / base).toFixed(2)}x` : ''))

const [spawnMean, spawnMedian] = execFileSync(process.env.SPAWN, [String(N), 'true']).toString().trim().split(' ').map((v) => Number(v) / 1000)
const sbx = await Sandbox.create('base')
try {
  const sdk = await timed(N, async () => {
    const r = await sbx.commands.run('true')
    if (r.exitCode !== 0) throw new Error('SDK run failed')
  })
  const rest = await timed(N, () => restExec(sbx.sandboxId, 'true', []))
  const restBash = await timed(N, () => restExec(sbx.sandboxId, '/bin/bash', ['-l', '-c', 'true']))
  console.log(`exec, ${N} runs each (ratios against the REST exec of true):`)
  console.log(`${'bare fork+exec of /bin/true'.padEnd(46)} ${spawnMedian.toFixed(2).padStart(8)} ms  (mean ${spawnMean.toFixed(2)})`)
  row('REST POST /processes {cmd: true}', rest, median(rest))
  row('REST POST /processes /bin/bash -l -c true', restBash, median(rest))
  row("SDK commands.run('true') (bash -l -c true)", sdk, median(rest))
  console.log(`SDK run vs REST exec of the same bash -l -c true: ${(median(sdk) / median(restBash)).toFixed(2)}x; ` +
              `REST exec of true vs bare fork+exec: ${(median(rest) / spawnMedian).toFixed(2)}x`)
} finally {
  await Sandbox.kill(sbx.sandboxId)
}

const sdkCreate = []
const restCreate = []
for (let i = 0; i < M; i++) {
  await new Promise((r) => setTimeout(r, 300))    // the warm pool refills
  let t0 = performance.now()
  const s = await Sandbox.create('base')
  sdkCreate.push(performance.now() - t0)
  await Sandbox.kill(s.sandboxId)
  await new Promise((r) => setTimeout(r, 300))
  t0 = performance.now()
  const r = await fetch(`${API}/sandboxes`, { method: 'POST', headers: auth, body: JSON.stringify({ templateID: 'base' }) })
  restCreate.push(performance.now() - t0)
  const made = await r.json()
  if (r.status !== 201) throw new Error(`REST create: ${r.status} ${JSON.stringify(made)}`)
  await fetch(`${API}/sandboxes/${made.sandboxID}`, { method: 'DELETE', headers: auth })
}
console.log(`create, ${M} each, after a pause for the pool:`)
row('REST POST /sandboxes', restCreate, median(restCreate))
row('SDK Sandbox.create (POST /v2/sandboxes)', sdkCreate, median(restCreate))
