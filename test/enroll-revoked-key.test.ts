// The enrollment service never certifies again a key whose certificate the operator revoked: not
// when the node re-mints a revoked agent at /agents (what provision-ct renew does for every agent
// of a renewed node), and not at /enroll. A revocation is undone only by a new key.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { enrollFixture, enrollNode, newCsr, call, caState, backdated, SECRET, type Fixture } from './helpers/enroll.ts';
import { nodeId } from '../lib/core/identity.ts';
import { revoke } from '../lib/ops/revoke.ts';

let fx: Fixture;
let node: { cert: string; key: Buffer };
let nodeKeyFile: string;

test.before(async () => {
  fx = await enrollFixture({ maxFailures: 10_000 });
  const enrolled = await enrollNode(fx, 'ct121.mesh');
  node = { cert: enrolled.cert, key: enrolled.key };
  nodeKeyFile = enrolled.keyFile;
});
test.after(async () => {
  await fx.close();
});

test("/agents refuses to re-certify a revoked agent's key; a new key is accepted", async () => {
  const first = await newCsr(fx.work, 'opus@ct121');
  assert.is((await call(fx, 'POST', '/agents', { body: { csr: first.csr }, ...node })).status, 200);
  const revoked = await revoke(fx.ca, 'opus@ct121', { reason: 'keyCompromise' });
  const before = caState(fx.ca);
  const again = await newCsr(fx.work, 'opus@ct121', first.key);
  const r = await call(fx, 'POST', '/agents', { body: { csr: again.csr }, ...node });
  assert.is(r.status, 403, r.text);
  assert.is(r.json.error.code, 'revoked_key');
  assert.match(r.json.error.message, new RegExp(`serial ${revoked.revoked[0]!.serial}`));
  assert.equal(caState(fx.ca), before, 'nothing signed');
  const fresh = await newCsr(fx.work, 'opus@ct121');
  assert.is((await call(fx, 'POST', '/agents', { body: { csr: fresh.csr }, ...node })).status, 200);
});

test('/enroll with the bootstrap secret refuses the key of a revoked node certificate', async () => {
  const { key, csr } = await newCsr(fx.work, 'ct122.mesh');
  assert.is((await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr } })).status, 200);
  await revoke(fx.ca, 'ct122', { reason: 'keyCompromise' });
  const before = caState(fx.ca);
  const r = await call(fx, 'POST', '/enroll', {
    bearer: SECRET,
    body: { csr: (await newCsr(fx.work, 'ct122.mesh', key)).csr },
  });
  assert.is(r.status, 403, r.text);
  assert.is(r.json.error.code, 'revoked_key');
  assert.equal(caState(fx.ca), before, 'nothing signed');
  assert.is(
    (await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr: (await newCsr(fx.work, 'ct122.mesh')).csr } }))
      .status,
    200,
  );
});

test('renewal with the live key still works', async () => {
  // Renewal opens in the last third of a certificate's life: renew from one issued 70 days ago.
  const old = await backdated(fx.ca, { kind: 'node', nodeId: nodeId('ct121') }, nodeKeyFile, 70, { retire: true });
  const r = await call(fx, 'POST', '/renew', {
    body: { csr: (await newCsr(fx.work, 'ct121.mesh', nodeKeyFile)).csr },
    cert: old,
    key: node.key,
  });
  assert.is(r.status, 200, r.text);
});

test.run();
