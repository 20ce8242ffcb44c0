// The pinned first contact (DESIGN §6 step 2): the bootstrap secret leaves the node only over TLS
// verified against a root whose fingerprint matched. A recording proxy in front of the real
// service, holding the CA host's own certificate, sees every request: with the right fingerprint
// the secret reaches it (the control); with a wrong one, an impostor CA, or a server name that
// does not match, it sees only the unauthenticated GET /ca.crt — never an Authorization header.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServed,
  mustOk,
  filesUnder,
  recordingProxy,
  SECRET,
  type Proxy,
  type Served,
} from './helpers/provision.ts';
import { freshCa } from './helpers/ca.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { nodeId } from '../lib/core/identity.ts';

let s: Served;
let proxy: Proxy;
test.before(async () => {
  s = await startServed();
  proxy = await recordingProxy(
    s,
    fs.readFileSync(path.join(s.hostDir, 'node.crt')),
    fs.readFileSync(path.join(s.hostDir, 'node.key')),
  );
});
test.after(async () => {
  await proxy.close();
  await s.close();
});

const viaProxy = (port: number, node: string, fp: string, extra: string[] = []) => [
  'enroll',
  '--node-id',
  node,
  '--datahub',
  `https://127.0.0.1:${port}`,
  '--servername',
  'ct110.mesh',
  '--ca-fingerprint',
  fp,
  ...extra,
];

test('control: with the right fingerprint the proxy sees GET /ca.crt, then the secret at POST /enroll', async () => {
  proxy.seen.length = 0;
  mustOk(
    await s.provision(path.join(s.home, 'ct130'), viaProxy(proxy.port, 'ct130', s.fingerprint), {
      RIVET_BOOTSTRAP_SECRET: SECRET,
    }),
    'enroll',
  );
  assert.equal(
    proxy.seen.map((r) => `${r.method} ${r.url}`),
    ['GET /ca.crt', 'POST /enroll'],
  );
  assert.is(proxy.seen[0]!.authorization, undefined);
  assert.is(proxy.seen[1]!.authorization, `Bearer ${SECRET}`);
});

test('a wrong --ca-fingerprint stops before the secret is sent; nothing is written', async () => {
  proxy.seen.length = 0;
  const wrong = `sha256:${'ab'.repeat(32)}`;
  const dir = path.join(s.home, 'ct131');
  const r = await s.provision(dir, viaProxy(proxy.port, 'ct131', wrong), { RIVET_BOOTSTRAP_SECRET: SECRET });
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, `has fingerprint ${s.fingerprint}, not the pinned ${wrong} — nothing was sent`);
  assert.equal(
    proxy.seen.map((x) => `${x.method} ${x.url} ${x.authorization ?? 'no-auth'}`),
    ['GET /ca.crt no-auth'],
  );
  assert.equal(filesUnder(dir), [], 'no key, no cert, no settings');
  assert.not.match(r.stderr, SECRET);
});

test('fingerprints are compared ignoring colons and case', async () => {
  const hex = s.fingerprint.slice('sha256:'.length).toUpperCase().match(/../g)!.join(':');
  mustOk(
    await s.provision(path.join(s.home, 'ct132'), viaProxy(proxy.port, 'ct132', `SHA256:${hex}`), {
      RIVET_BOOTSTRAP_SECRET: SECRET,
    }),
    'enroll',
  );
  const bad = await s.provision(path.join(s.home, 'ct133'), viaProxy(proxy.port, 'ct133', 'sha256:1234'), {
    RIVET_BOOTSTRAP_SECRET: SECRET,
  });
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /--ca-fingerprint "sha256:1234" must be the root's SHA-256/);
});

test('an impostor with its own CA never gets the secret: its chain fails the pin, a relayed genuine chain fails TLS', async () => {
  const evil = await freshCa();
  await issueWithNewKey(evil, { kind: 'node', nodeId: nodeId('ct110') });
  const [cert, key] = [
    fs.readFileSync(evil.store.issued('ct110', 'crt')),
    fs.readFileSync(evil.store.issued('ct110', 'key')),
  ];
  const own = await recordingProxy(s, cert, key, fs.readFileSync(evil.store.chainFile, 'utf8'));
  const relay = await recordingProxy(s, cert, key);
  try {
    const dir = path.join(s.home, 'ct134');
    const r = await s.provision(dir, viaProxy(own.port, 'ct134', s.fingerprint), { RIVET_BOOTSTRAP_SECRET: SECRET });
    assert.is(r.exitCode, 2);
    assert.match(r.stderr, /not the pinned sha256:[0-9a-f]{64} — nothing was sent/);
    assert.equal(
      own.seen.map((x) => `${x.method} ${x.url} ${x.authorization ?? 'no-auth'}`),
      ['GET /ca.crt no-auth'],
    );
    assert.equal(filesUnder(dir), []);
    const relayed = await s.provision(dir, viaProxy(relay.port, 'ct134', s.fingerprint), {
      RIVET_BOOTSTRAP_SECRET: SECRET,
    });
    assert.is(relayed.exitCode, 1);
    assert.match(relayed.stderr, /cannot reach .*\/enroll.*(certificate|signature)/i);
    assert.equal(
      relay.seen.map((x) => `${x.method} ${x.url} ${x.authorization ?? 'no-auth'}`),
      ['GET /ca.crt no-auth'],
    );
    assert.not.ok(filesUnder(dir).includes('node.crt'));
  } finally {
    await own.close();
    await relay.close();
  }
});

test('a server name the datahub certificate does not carry fails the TLS check before the secret', async () => {
  proxy.seen.length = 0;
  const dir = path.join(s.home, 'ct135');
  const args = [
    'enroll',
    '--node-id',
    'ct135',
    '--datahub',
    `https://127.0.0.1:${proxy.port}`,
    '--servername',
    'ct999.mesh',
    '--ca-fingerprint',
    s.fingerprint,
  ];
  const r = await s.provision(dir, args, { RIVET_BOOTSTRAP_SECRET: SECRET });
  assert.is(r.exitCode, 1);
  assert.match(
    r.stderr,
    /cannot reach "https:\/\/ct999\.mesh:\d+\/enroll": .*(IP|Hostname).* — is the datahub up, and --datahub \(and --servername\) right\?/,
  );
  assert.equal(
    proxy.seen.map((x) => `${x.method} ${x.url} ${x.authorization ?? 'no-auth'}`),
    ['GET /ca.crt no-auth'],
  );
  assert.not.ok(filesUnder(dir).includes('node.crt'));
});

// Issue 14: a node holding IP:10.0.0.111 was accepted as the datahub at https://10.0.0.111. An
// address ties the secret to nobody (and any node may carry loopback or localhost).
test('an address --datahub without --servername is refused before any request: exit 2, nothing sent or written', async () => {
  for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
    proxy.seen.length = 0;
    const dir = path.join(s.home, 'ct136');
    const r = await s.provision(
      dir,
      ['enroll', '--node-id', 'ct136', '--datahub', `https://${host}:${proxy.port}`, '--ca-fingerprint', s.fingerprint],
      { RIVET_BOOTSTRAP_SECRET: SECRET },
    );
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /names the datahub by address — add --servername <its node name>/);
    assert.equal(proxy.seen, [], `${host}: no request at all`);
    assert.equal(filesUnder(dir), []);
    assert.not.match(r.stderr, SECRET);
  }
});

test.run();
