// The enrollment service end to end, over real HTTPS on loopback: a node enrolls (with curl, as a
// shell script on a new CT would), renews over mTLS with the certificate it got, mints an agent,
// and fetches the CRL bundle and the chain. Also the one-time token command through the real CLI.
import { spawnServe } from './helpers/serve.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { execa } from 'execa';
import { enrollFixture, newCsr, call, backdated, SECRET, type Fixture } from './helpers/enroll.ts';
import { cli, freshCa } from './helpers/ca.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { nodeId } from '../lib/core/identity.ts';
import { signCrl } from '../lib/sign/crl-sign.ts';
import { DEFAULT_SAN_CIDRS, parseCidrs, parseSan } from '../lib/core/san.ts';
import { startEnrollService } from '../lib/service/server.ts';
import { parseCertPem, parseCertsPem, publicKeyDer } from '../lib/x509/cert.ts';
import { parseCrlBundle, splitCrlBundle } from '../lib/x509/crl.ts';
import { readDb } from '../lib/ca/database.ts';
import { publicKeyOfPrivatePem } from '../lib/core/keys.ts';
import { writeBundleLocked } from '../lib/ca/published.ts';
import { transaction } from '../lib/sign/transaction.ts';

let fx: Fixture;
test.before(async () => {
  fx = await enrollFixture();
});
test.after(async () => {
  await fx.close();
});

test('enroll with curl → renew over mTLS with the issued cert → mint an agent → fetch CRL and CA', async () => {
  const { key, csr } = await newCsr(fx.work, 'ct111.mesh');
  const body = path.join(fx.work, 'enroll.json');
  fs.writeFileSync(body, JSON.stringify({ csr, sans: ['DNS:api.ct111.mesh', 'IP:10.1.2.3'] }));
  const chainFile = path.join(fx.work, 'chain.pem');
  fs.writeFileSync(chainFile, fx.chain);
  const secretHeader = path.join(fx.work, 'auth.hdr'); // header from a file: the secret stays out of argv
  fs.writeFileSync(secretHeader, `Authorization: Bearer ${SECRET}\n`);
  const url = `https://ct110.mesh:${fx.service.port}`;
  const curl = await execa('curl', [
    '-sS',
    '--fail-with-body',
    '--cacert',
    chainFile,
    '--resolve',
    `ct110.mesh:${fx.service.port}:127.0.0.1`,
    '-H',
    `@${secretHeader}`,
    '-H',
    'content-type: application/json',
    '--data-binary',
    `@${body}`,
    `${url}/enroll`,
  ]);
  const enrolled = JSON.parse(String(curl.stdout));
  assert.is(enrolled.cn, 'ct111.mesh');
  const [leaf, intermediate] = parseCertsPem(enrolled.cert);
  assert.ok(leaf && intermediate, 'cert holds leaf + intermediate');
  assert.equal(leaf!.subjectCNs, ['ct111.mesh']);
  assert.equal(leaf!.dns, ['ct111.mesh', 'ct111-mcp.mesh', 'ct111-runtime-rpc.mesh', 'api.ct111.mesh']);
  assert.equal(leaf!.ips, ['10.1.2.3']);
  assert.equal(leaf!.uris, ['spiffe://mesh/node/ct111']);
  assert.ok(
    publicKeyDer(leaf!.x509).equals(publicKeyDer(publicKeyOfPrivatePem(fs.readFileSync(key, 'utf8')))),
    'certifies the CSR key',
  );
  assert.is(enrolled.chain, fx.chain);
  assert.is(parseCrlBundle(enrolled.crl).length, 2, 'CRL bundle: intermediate + root');

  const nodeKey = fs.readFileSync(key);
  // Renewal opens in the last third of a certificate's life: renew from one issued 70 days ago for
  // this key (as if this node had enrolled then), the fresh one retired.
  const old = await backdated(fx.ca, { kind: 'node', nodeId: nodeId('ct111') }, key, 70, {
    sans: ['DNS:api.ct111.mesh', 'IP:10.1.2.3'].map(parseSan),
    retire: true,
  });
  const renewCsr = await newCsr(fx.work, 'ct111.mesh', key);
  const renewed = await call(fx, 'POST', '/renew', { body: { csr: renewCsr.csr }, cert: old, key: nodeKey });
  assert.is(renewed.status, 200, renewed.text);
  const renewedLeaf = parseCertPem(renewed.json.cert);
  assert.is.not(renewedLeaf.serial, leaf!.serial);
  assert.equal(renewedLeaf.dns, leaf!.dns, 'renewal keeps the SANs');
  assert.equal(renewedLeaf.ips, leaf!.ips);
  assert.ok(publicKeyDer(renewedLeaf.x509).equals(publicKeyDer(leaf!.x509)), 'renewal keeps the key');

  const agent = await newCsr(fx.work, 'opus@ct111');
  const minted = await call(fx, 'POST', '/agents', { body: { csr: agent.csr }, cert: renewed.json.cert, key: nodeKey });
  assert.is(minted.status, 200, minted.text);
  const agentLeaf = parseCertPem(minted.json.cert);
  assert.equal(agentLeaf.subjectCNs, ['opus@ct111']);
  assert.equal(agentLeaf.uris, ['spiffe://mesh/agent/ct111/opus']);
  assert.equal(agentLeaf.eku, ['1.3.6.1.5.5.7.3.2']);

  const crl = await call(fx, 'GET', '/crl.pem');
  assert.is(crl.status, 200);
  assert.is(crl.text, fs.readFileSync(fx.ca.store.crlBundle, 'utf8'));
  const chain = await call(fx, 'GET', '/ca.crt');
  assert.is(chain.status, 200);
  assert.equal(
    parseCertsPem(chain.text).map((c) => c.subjectCNs[0]),
    ['Rivet Intermediate CA 1', 'Rivet Root CA'],
  );

  // What we got actually works for mTLS: the agent cert verifies against the fetched chain + CRLs.
  const ctx = tls.createSecureContext({ ca: chain.text, crl: splitCrlBundle(crl.text) });
  assert.ok(ctx, 'chain and CRL bundle load');
  const rows = (await readDb(path.join(fx.ca.store.dir, 'intermediate'))).map((r) => r.serial);
  for (const s of [leaf!.serial, renewedLeaf.serial, agentLeaf.serial])
    assert.ok(rows.includes(s), `serial ${s} is in the database`);
  const audit = fs.readFileSync(fx.ca.store.auditLog, 'utf8');
  assert.match(audit, /"event":"enroll","result":"ok","cn":"ct111.mesh"/);
  assert.match(audit, /"event":"renew","result":"ok"/);
  assert.match(audit, /"event":"agent","result":"ok","cn":"opus@ct111"/);
  assert.not.ok(audit.includes(SECRET), 'audit.log never holds the secret');
});

test("healthz reports liveness and the CRLs' nextUpdate", async () => {
  const r = await call(fx, 'GET', '/healthz');
  assert.is(r.status, 200);
  assert.is(r.json.status, 'ok');
  assert.is(r.json.crls.length, 2);
  assert.ok(Date.parse(r.json.crls[0].nextUpdate) > Date.now() + 3 * 86_400_000, 'intermediate CRL has > 3 days left');
});

test('a one-time token from `rivet-ca token` enrolls its node once; the token is stored only hashed', async () => {
  const minted = await cli(fx.ca, ['token', 'ct120', '--ttl', '10m']);
  assert.is(minted.exitCode, 0, minted.stderr);
  const token = minted.stdout.trim();
  assert.match(token, /^rvt_[A-Za-z0-9_-]{43}$/);
  const store = fs.readFileSync(path.join(fx.ca.store.dir, 'enroll-tokens.json'), 'utf8');
  assert.not.ok(store.includes(token), 'token store holds no token');
  assert.is(fs.statSync(path.join(fx.ca.store.dir, 'enroll-tokens.json')).mode & 0o777, 0o600);
  assert.not.ok(fs.readFileSync(fx.ca.store.auditLog, 'utf8').includes(token), 'audit.log holds no token');
  const { csr } = await newCsr(fx.work, 'ct120.mesh');
  const first = await call(fx, 'POST', '/enroll', { bearer: token, body: { csr } });
  assert.is(first.status, 200, first.text);
  assert.is(first.json.cn, 'ct120.mesh');
  assert.not.ok(fs.readFileSync(fx.ca.store.auditLog, 'utf8').includes(token), 'audit.log still holds no token');
});

test('unknown paths are 404 and wrong methods 405, as JSON errors', async () => {
  const a = await call(fx, 'GET', '/nope');
  assert.is(a.status, 404);
  assert.is(a.json.error.code, 'not_found');
  const b = await call(fx, 'GET', '/enroll');
  assert.is(b.status, 405);
  assert.is(typeof b.json.error.message, 'string');
});

test('`rivet-ca serve` runs as a process: prints its port, warns about MESH_SECRET, enrolls, stops on SIGTERM', async () => {
  const { child, port } = await spawnServe({
    args: ['--tls-cert', fx.ca.store.issued('ct110', 'crt'), '--tls-key', fx.ca.store.issued('ct110', 'key')],
    env: { RIVET_CA_DIR: fx.ca.store.dir, RIVET_ENV_FILE: '/dev/null', MESH_SECRET: 'legacy secret value' },
    timeoutMs: 20_000,
  });
  try {
    const health = await execa('curl', [
      '-sS',
      '--cacert',
      fx.ca.store.chainFile,
      '--resolve',
      `ct110.mesh:${port}:127.0.0.1`,
      `https://ct110.mesh:${port}/healthz`,
    ]);
    assert.is(JSON.parse(String(health.stdout)).status, 'ok');
    const { csr } = await newCsr(fx.work, 'ct160.mesh');
    const r = await call({ ...fx, service: { ...fx.service, port } }, 'POST', '/enroll', {
      bearer: 'legacy secret value',
      body: { csr },
    });
    assert.is(r.status, 200, r.text);
  } finally {
    child.kill('SIGTERM');
  }
  const done = await child;
  assert.is(done.exitCode, 0, String(done.stderr));
  assert.match(String(done.stderr), /MESH_SECRET is deprecated/);
  assert.not.match(String(done.stderr), /legacy secret value/);
});

test('`rivet-ca token` refuses a bad node-id and a bad --ttl with exit 2, minting nothing', async () => {
  const a = await cli(fx.ca, ['token', 'CT111']);
  assert.is(a.exitCode, 2);
  assert.match(a.stderr, /must be lower case — did you mean "ct111"\?/);
  const b = await cli(fx.ca, ['token', 'ct111', '--ttl', '0s']);
  assert.is(b.exitCode, 2);
  assert.match(b.stderr, /--ttl/);
  const c = await cli(fx.ca, ['token', 'ct111', '--ttl', '90d']);
  assert.is(c.exitCode, 2);
  assert.is(a.stdout + b.stdout + c.stdout, '', 'no token printed');
});

test('the service re-signs a CRL that is due, at start and while running, so it never lapses', async () => {
  const ca = await freshCa();
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  const makeDue = () =>
    transaction(ca, 'test: CRL nearly lapsed', async () => {
      await signCrl(await ca.store.current(), 1); // one hour left: well inside the 3-day window
      await writeBundleLocked(ca);
    });
  const intermediateNext = () => parseCrlBundle(fs.readFileSync(ca.store.crlBundle, 'utf8'))[0]!.nextUpdate!.getTime();
  await makeDue();
  assert.ok(intermediateNext() < Date.now() + 2 * 3_600_000);
  const service = await startEnrollService({
    ca,
    sanCidrs: parseCidrs(DEFAULT_SAN_CIDRS),
    secret: SECRET,
    host: '127.0.0.1',
    port: 0,
    tlsCert: ca.store.issued('ct110', 'crt'),
    tlsKey: ca.store.issued('ct110', 'key'),
    limits: { crlRefreshMs: 200, reloadCheckMs: 100 },
  });
  try {
    assert.ok(intermediateNext() > Date.now() + 6 * 86_400_000, 're-signed at start');
    await makeDue();
    const deadline = Date.now() + 10_000;
    while (intermediateNext() < Date.now() + 6 * 86_400_000) {
      assert.ok(Date.now() < deadline, 'CRL re-signed by the running service within 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const health = await call(
      { ca, service, chain: fs.readFileSync(ca.store.chainFile, 'utf8'), work: '', close: async () => {} },
      'GET',
      '/healthz',
    );
    assert.is(health.json.status, 'ok');
  } finally {
    await service.close();
  }
});

test.run();
