// Red team, issue 13: who gets recorded as the CA host (the one sender crlReceiver accepts pushes
// from). The attack: holding the bootstrap secret, enroll a node whose cert carries the address new
// nodes dial (an IP SAN), sit in the middle of a new node's first contact and relay it to the real
// service — the new node would record the attacker's node as its CA host, so the attacker could push
// and the real CA host's pushes would be 403 (revocations then reach that node by pull only). It
// broke on the main of 22:40 (caHost ct666 recorded); the policy-issuance merge closed it (an IP
// --datahub needs --servername, and names are exclusive to one live node). Pinned here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { startServed, mustOk, recordingProxy, SECRET, type Served } from './helpers/provision.ts';

let s: Served;
let relay: Awaited<ReturnType<typeof startRelay>>;
const settings = (dir: string) =>
  JSON.parse(fs.readFileSync(path.join(dir, 'node.json'), 'utf8')) as { caHost?: string };

/** A TLS-terminating relay to the real service, answering with `dir`'s node certificate. */
async function startRelay(dir: string) {
  const proxy = await recordingProxy(
    s,
    fs.readFileSync(path.join(dir, 'node.crt')),
    fs.readFileSync(path.join(dir, 'node.key')),
  );
  return { ...proxy, lines: () => proxy.seen.map((r) => `${r.method} ${r.url}`) };
}

test.before(async () => {
  s = await startServed();
  // The attacker: the bootstrap secret buys a node cert carrying the address new nodes dial.
  const evil = path.join(s.home, 'ct666');
  mustOk(
    await s.provision(
      evil,
      ['enroll', '--node-id', 'ct666', ...s.datahubArgs, '--ca-fingerprint', s.fingerprint, '--san', 'IP:127.0.0.1'],
      { RIVET_BOOTSTRAP_SECRET: SECRET },
    ),
    'enroll ct666',
  );
  relay = await startRelay(evil);
});
test.after(async () => {
  await relay?.close();
  await s?.close();
});

test('dialled by address, the first contact stops before the secret; nothing is recorded', async () => {
  const dir = path.join(s.home, 'ct140');
  relay.seen.length = 0;
  const r = await s.provision(
    dir,
    ['enroll', '--node-id', 'ct140', '--datahub', `https://127.0.0.1:${relay.port}`, '--ca-fingerprint', s.fingerprint],
    { RIVET_BOOTSTRAP_SECRET: SECRET },
  );
  assert.is.not(r.exitCode, 0, `enrolled by address through the attacker's relay:\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, /--servername/);
  assert.not.ok(relay.lines().includes('POST /enroll'), `the secret reached the relay: ${relay.lines().join(', ')}`);
  assert.not.ok(fs.existsSync(path.join(dir, 'node.json')), 'no node.json, so no caHost');
});

test("dialled as the CA host's name, the relay holding another node's cert gets no secret", async () => {
  const dir = path.join(s.home, 'ct141');
  relay.seen.length = 0;
  const r = await s.provision(
    dir,
    [
      'enroll',
      '--node-id',
      'ct141',
      '--datahub',
      `https://127.0.0.1:${relay.port}`,
      '--servername',
      'ct110.mesh',
      '--ca-fingerprint',
      s.fingerprint,
    ],
    { RIVET_BOOTSTRAP_SECRET: SECRET },
  );
  assert.is.not(r.exitCode, 0, `enrolled through the attacker's relay:\n${r.stdout}${r.stderr}`);
  assert.not.ok(relay.lines().includes('POST /enroll'), `the secret reached the relay: ${relay.lines().join(', ')}`);
  assert.not.ok(fs.existsSync(path.join(dir, 'node.json')), 'no node.json, so no caHost');
});

test("control: reached by the CA host's own mesh name, the CA host is recorded", async () => {
  const dir = path.join(s.home, 'ct142');
  mustOk(
    await s.provision(dir, ['enroll', '--node-id', 'ct142', ...s.datahubArgs, '--ca-fingerprint', s.fingerprint], {
      RIVET_BOOTSTRAP_SECRET: SECRET,
    }),
    'enroll ct142',
  );
  assert.is(settings(dir).caHost, 'ct110');
});

test.run();
