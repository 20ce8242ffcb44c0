// Pushes reach everyone (issue 15, DESIGN §5): real mesh servers on loopback (meshServerOptions +
// watchMeshTls + crlReceiver), the real CLI and the real `rivet-ca serve`. A node down during a
// revoke is queued, retried by serve (surviving a SIGKILL of serve mid-retry) and current ≤ 30 s
// after it comes back; a pull-only node is never contacted; rotate-intermediate pushes the chain.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { makeKit, probe, startMeshServer, type Kit, type MeshServer } from './helpers/pki-kit.ts';
import { CLI } from './helpers/ca.ts';
import { openCa } from '../lib/ca/handle.ts';
import { meshDomain } from '../lib/core/identity.ts';
import { doctor } from '../lib/ops/doctor.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';

let kit: Kit;
const servers = new Map<string, MeshServer>();
const ports: Record<string, number> = {};
const dirs: Record<string, string> = {};
let pullOnlyContacts = 0;
let pullOnlyListener: net.Server;
let env: Record<string, string>;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
const certOf = (name: string) => ({
  cert: fs.readFileSync(path.join(kit.caDir, 'issued', `${name}.crt`)),
  key: fs.readFileSync(path.join(kit.caDir, 'issued', `${name}.key`)),
  rejectUnauthorized: false,
});
const revokedOn = (node: string) =>
  new Set(
    parseCrlBundle(fs.readFileSync(path.join(dirs[node]!, 'crl.pem'), 'utf8')).flatMap((c) =>
      c.revoked.map((r) => String(r.serial)),
    ),
  );
const serialOf = (name: string) =>
  new X509Certificate(fs.readFileSync(path.join(kit.caDir, 'issued', `${name}.crt`))).serialNumber;
const state = () => JSON.parse(fs.readFileSync(path.join(kit.caDir, 'push-state.json'), 'utf8'));

test.before(async () => {
  kit = await makeKit(['ct110', 'ct111', 'ct113', 'ct115', 'opus@ct111', 'grok@ct111']);
  for (const n of ['ct110', 'ct111', 'ct113', 'ct115']) {
    dirs[n] = await kit.nodeDir(n);
    ports[n] = await freePort();
  }
  for (const n of ['ct110', 'ct111']) servers.set(n, await startMeshServer(dirs[n]!, { port: ports[n] }));
  // ct115 has no mesh server; something listens on its port only to count who knocks.
  pullOnlyListener = net
    .createServer((s) => {
      pullOnlyContacts++;
      s.destroy();
    })
    .listen(ports.ct115, '127.0.0.1');
  env = {
    RIVET_NODE_DIR: dirs.ct110!,
    RIVET_CRL_PUSH_CONNECT_TO: Object.entries(ports)
      .map(([n, p]) => `${n}.mesh:3000:127.0.0.1:${p}`)
      .join(','),
  };
});
test.after(async () => {
  for (const s of servers.values()) await s.close();
  pullOnlyListener?.close();
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

test('a node marked pull-only is recorded in the CA dir', async () => {
  const r = await kit.cli(['push', '--pull-only', 'ct115'], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /pull-only: ct115 — not pushed to/);
  assert.equal(state().pullOnly, ['ct115']);
  const bad = await kit.cli(['push', '--pull-only', 'opus@ct111'], env);
  assert.is(bad.exitCode, 2);
});

test('revoke with ct113 down: exit 0, ct113 reported queued, ct111 current, ct115 neither pushed nor failed', async () => {
  const r = await kit.cli(['revoke', 'opus@ct111'], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /push ok +ct111 /);
  assert.match(r.stdout, /push FAILED ct113 .*queued, retry 1 at /);
  assert.match(
    r.stdout,
    /push: 2\/3 nodes updated; the others catch up by pull and stay queued: ct113 — retried by `rivet-ca serve`/,
  );
  assert.match(r.stdout, /pull-only \(not pushed\): ct115/);
  assert.not.match(r.stdout, /FAILED ct115/);
  assert.is(pullOnlyContacts, 0, 'nobody knocked on the pull-only node');
  assert.ok(revokedOn('ct111').has(serialOf('opus@ct111')));
});

test('revoke --strict exits 1 while ct113 has not acknowledged; status --json shows every node', async () => {
  const r = await kit.cli(['revoke', 'grok@ct111', '--strict'], env);
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stderr, /rivet-ca: 1 node\(s\) have not acknowledged the new CRLs: ct113 — they stay queued/);
  assert.ok(revokedOn('ct111').has(serialOf('grok@ct111')), 'the revocation itself happened');
  const s = await kit.cli(['status', '--json'], env);
  const nodes = Object.fromEntries(JSON.parse(s.stdout).nodes.map((n: { node: string }) => [n.node, n]));
  assert.equal(Object.keys(nodes), ['ct110', 'ct111', 'ct113', 'ct115']);
  assert.is(nodes.ct111.upToDate, true);
  assert.is(nodes.ct111.lastPush.ok, true);
  assert.is(nodes.ct111.chainGeneration, 1);
  assert.ok(/^\d+$/.test(nodes.ct111.acknowledged['Rivet Intermediate CA 1']));
  assert.ok(Date.parse(nodes.ct111.certExpires) > Date.now());
  assert.is(nodes.ct113.upToDate, false);
  assert.is(nodes.ct113.lastPush.ok, false);
  assert.is(nodes.ct113.queued.attempts, 2);
  assert.is(nodes.ct115.pullOnly, true);
  assert.is(nodes.ct115.lastPush, undefined);
  assert.match(
    s.stdout + (await kit.cli(['doctor'], env)).stdout,
    /WARN +node ct113: has not acknowledged the current CRLs/,
  );
  // Past the grace period the unacknowledged revocation turns doctor red.
  const later = await doctor(openCa(kit.caDir, meshDomain('mesh')), new Date(Date.now() + 6 * 60_000));
  assert.ok(later.some((f) => f.level === 'fail' && /node ct113: has not acknowledged .*a revocation of/.test(f.what)));
  assert.ok(later.some((f) => f.level === 'ok' && /node ct115: pull-only/.test(f.what)));
});

type Serve = { child: ResultPromise; err: () => string };
function startServe(): Promise<Serve> {
  const child = execa(CLI, ['serve', '--listen', '127.0.0.1:0'], {
    reject: false,
    cwd: os.tmpdir(),
    env: { RIVET_CA_DIR: kit.caDir, RIVET_ENV_FILE: '/dev/null', ...env },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (/listening on/.test(String(d))) {
        clearTimeout(timer);
        resolve({ child, err: () => err });
      }
    });
    void child.then(() => reject(new Error(`serve exited: ${err}`)));
  });
}

test('serve retries ct113; SIGKILL mid-retry keeps the queue; after a restart ct113 is current ≤ 30 s after it comes back', async () => {
  // A black hole on ct113's port: serve's retry connects and waits — and is killed right then.
  const held: net.Socket[] = [];
  let knocked!: () => void;
  const knock = new Promise<void>((resolve) => {
    knocked = resolve;
  });
  const hole = net
    .createServer((s) => {
      held.push(s);
      knocked();
    })
    .listen(ports.ct113, '127.0.0.1');
  const first = await startServe();
  await knock;
  first.child.kill('SIGKILL');
  await first.child;
  const after = state();
  assert.ok(after.nodes.ct113.queued, 'the queue entry survived');
  assert.ok(after.nodes.ct113.queued.attempts >= 2);
  const second = await startServe();
  try {
    for (const s of held) s.destroy();
    await new Promise<void>((resolve) => hole.close(() => resolve()));
    // Let the restarted serve fail once more against the closed port, so the wait below includes
    // a real backoff interval rather than its first tick.
    const before = after.nodes.ct113.queued.attempts as number;
    const until = performance.now() + 40_000;
    while ((state().nodes.ct113.queued?.attempts ?? 0) <= before && performance.now() < until)
      await new Promise((r) => setTimeout(r, 100));
    const queuedNow = state().nodes.ct113.queued;
    assert.ok(queuedNow.attempts > before, 'the restarted serve retried from the persisted queue');
    const back = performance.now();
    servers.set('ct113', await startMeshServer(dirs.ct113!, { port: ports.ct113 }));
    const want = [serialOf('opus@ct111'), serialOf('grok@ct111')];
    while (!want.every((s) => revokedOn('ct113').has(s)) && performance.now() - back < 40_000)
      await new Promise((r) => setTimeout(r, 100));
    const seconds = (performance.now() - back) / 1000;
    console.log(
      `  ct113 had both revocations ${seconds.toFixed(1)} s after its mesh server came back (limit 30 s; retry ${queuedNow.attempts} was due at ${queuedNow.next})`,
    );
    assert.ok(seconds <= 30, `took ${seconds.toFixed(1)} s`);
    const refused = await probe(ports.ct113, certOf('grok@ct111'));
    assert.ok(!refused.ok || refused.status !== 200, 'ct113 refuses the revoked agent');
    const end = performance.now() + 5_000;
    while (state().nodes.ct113.queued && performance.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.is(state().nodes.ct113.queued, undefined, 'acknowledged: out of the queue');
    assert.match(second.err(), /push ct113: acknowledged/);
  } finally {
    second.child.kill('SIGTERM');
    await second.child;
  }
  assert.is(pullOnlyContacts, 0);
});

test('rotate-intermediate pushes the chain: a new-intermediate agent is accepted ≤ 5 s later (refused without the push)', async () => {
  const accepted = async (node: string, agent: string) => {
    const p = await probe(ports[node]!, certOf(agent));
    return p.ok && p.status === 200;
  };
  const quiet = await kit.cli(['rotate-intermediate', '--no-push'], env);
  assert.is(quiet.exitCode, 0, quiet.stderr);
  assert.is((await kit.cli(['issue-agent', 'sonnet@ct111'], env)).exitCode, 0);
  assert.is(await accepted('ct111', 'sonnet@ct111'), false, 'without the push ct111 cannot verify intermediate 2');
  const r = await kit.cli(['rotate-intermediate'], env);
  const done = performance.now();
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /push: 3\/3 nodes updated; pull-only \(not pushed\): ct115/);
  assert.is((await kit.cli(['issue-agent', 'haiku@ct111'], env)).exitCode, 0);
  let ok = false;
  while (!(ok = await accepted('ct111', 'haiku@ct111')) && performance.now() - done < 5_000)
    await new Promise((res) => setTimeout(res, 50));
  const seconds = (performance.now() - done) / 1000;
  console.log(
    `  a generation-3 agent was accepted by ct111 ${seconds.toFixed(2)} s after rotate-intermediate returned (limit 5 s)`,
  );
  assert.ok(ok, 'accepted');
  assert.ok(await accepted('ct113', 'haiku@ct111'), 'and by ct113');
  assert.ok(await accepted('ct111', 'sonnet@ct111'), 'the generation-2 agent too');
  const nodes = JSON.parse((await kit.cli(['status', '--json'], env)).stdout).nodes;
  assert.is(nodes.find((n: { node: string }) => n.node === 'ct113').chainGeneration, 3);
});

test('push --node pushes one node now; unknown and pull-only nodes are refused with exit 2', async () => {
  const r = await kit.cli(['push', '--node', 'ct111'], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /push ok +ct111 .*unchanged/);
  assert.match(r.stdout, /push: 1\/1 nodes updated/);
  const unknown = await kit.cli(['push', '--node', 'ct199'], env);
  assert.is(unknown.exitCode, 2);
  assert.match(unknown.stderr, /node "ct199" holds no valid node certificate/);
  const po = await kit.cli(['push', '--node', 'ct115'], env);
  assert.is(po.exitCode, 2);
  assert.match(po.stderr, /pull-only — `rivet-ca push --pushable ct115` first/);
  assert.is((await kit.cli(['push', '--pushable', 'ct115'], env)).exitCode, 0);
  const all = await kit.cli(['push'], env);
  assert.is(all.exitCode, 1, 'ct115 has no mesh server: the push fails and it is queued');
  assert.match(all.stdout, /push FAILED ct115/);
  assert.ok(pullOnlyContacts > 0);
});

test.run();
