// Red team, issue 13: a refused push must cost the node next to nothing. recordRefusal skipped a
// refusal equal to the *last* one (same code, same sender) within a second — so a sender holding two
// mesh certificates (any node has agents) that alternates them made every refused POST take the CRL
// lock and rewrite + fsync crl-state.json, and the CA host's real push queued behind them (measured
// on main: 176 rewrites in 5 s from 40 connections, the push 149 → 1409 ms). Now at most one refusal
// per node dir per second is recorded by a process, decided before the lock is taken.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { makeKit, startMeshServer, probe, type Kit, type MeshServer } from './helpers/pki-kit.ts';

let kit: Kit;
let server: MeshServer;
const dirs: Record<string, string> = {};
const rd = (dir: string, f: string) => fs.readFileSync(path.join(dir, f));

test.before(async () => {
  kit = await makeKit(['ct110', 'ct111', 'ct112', 'opus@ct111', 'a1@ct112', 'a2@ct112']);
  dirs.ct110 = await kit.nodeDir('ct110');
  dirs.ct111 = await kit.nodeDir('ct111', ['opus']);
  dirs.ct112 = await kit.nodeDir('ct112', ['a1', 'a2']);
  server = await startMeshServer(dirs.ct111);
});
test.after(async () => {
  await server?.close();
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

test('alternating refused senders do not turn their requests into crl-state.json rewrites', async () => {
  const stateFile = path.join(dirs.ct111!, 'crl-state.json');
  const agent = (a: string) =>
    new https.Agent({
      keepAlive: true,
      maxSockets: 8,
      cert: rd(dirs.ct112!, `agents/${a}.crt`),
      key: rd(dirs.ct112!, `agents/${a}.key`),
      ca: rd(dirs.ct111!, 'rivet-ca.crt'),
      servername: 'ct111.mesh',
    } as https.AgentOptions);
  const agents = [agent('a1'), agent('a2')];
  let stop = false;
  let refused = 0;
  const post = (i: number) =>
    new Promise<void>((resolve) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/api/mesh/crl',
          method: 'POST',
          agent: agents[i % 2],
          headers: { 'content-length': 3 },
        },
        (res) => {
          if (res.statusCode === 403) refused++;
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', () => resolve());
      req.end('abc');
    });
  // Every rename of crl-state.json is a new inode; polling can only undercount them.
  let rewrites = 0;
  let ino = fs.statSync(stateFile, { throwIfNoEntry: false })?.ino;
  const watch = setInterval(() => {
    const now = fs.statSync(stateFile, { throwIfNoEntry: false })?.ino;
    if (now !== ino) {
      rewrites++;
      ino = now;
    }
  }, 2);
  const started = performance.now();
  const loops = Array.from({ length: 16 }, async (_, k) => {
    for (let i = k; !stop; i += 16) await post(i);
  });
  await new Promise((r) => setTimeout(r, 2000));
  // The CA host's push still lands (and how long it waited is printed, not asserted).
  await kit.cli(['revoke', 'opus@ct111']);
  const body = `${fs.readFileSync(path.join(kit.caDir, 'intermediate/chain.pem'), 'utf8')}${fs.readFileSync(path.join(kit.caDir, 'crl.pem'), 'utf8')}`;
  const t0 = performance.now();
  const push = await probe(
    server.port,
    { cert: rd(dirs.ct110!, 'node.crt'), key: rd(dirs.ct110!, 'node.key'), ca: rd(dirs.ct111!, 'rivet-ca.crt') },
    '/api/mesh/crl',
    {
      method: 'POST',
      headers: { 'content-length': Buffer.byteLength(body) },
      body,
      signal: AbortSignal.timeout(30_000),
    },
  );
  const pushMs = Math.round(performance.now() - t0);
  stop = true;
  await Promise.all(loops);
  clearInterval(watch);
  const seconds = (performance.now() - started) / 1000;
  for (const a of agents) a.destroy();
  console.log(
    `  refused pushes: ${refused} in ${seconds.toFixed(1)} s from 2 alternating certs; crl-state.json rewrites seen: ${rewrites}; CA host push during the flood: ${pushMs} ms`,
  );
  assert.ok(refused > 50, `the flood ran (${refused} refusals)`);
  assert.ok(
    push.ok && push.status === 200 && push.json.installed === true,
    `the CA host's push installed: ${JSON.stringify(push)}`,
  );
  // ≤ 1 refusal record per second (plus one for a partial second), plus the push's own install.
  const bound = Math.ceil(seconds) + 2;
  assert.ok(
    rewrites <= bound,
    `crl-state.json was rewritten ${rewrites} times (bound ${bound}) for ${refused} refused pushes in ${seconds.toFixed(1)} s`,
  );
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { lastRefusal?: { code: string } };
  assert.is(state.lastRefusal?.code, 'forbidden', 'refusals are still recorded for provision-ct status');
});

test.run();
