// Issue 13: chain changes at a receiver (direct install; push and pull use the same installCrlBundle).
// A chain that leaves out a CA whose certificates can still be valid on this node does not drop it
// (the CA and its CRL are kept, and a delivery that brings nothing else is refused once); a CA goes
// once the CRL this node holds for it has lapsed, or the root's CRL revokes it; and its crlNumber
// high-water mark outlives it, so bringing it back with a CRL from before is a rollback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { execa } from 'execa';
import { CLI, tempDir } from './helpers/ca.ts';
import { makeKit, type Kit } from './helpers/pki-kit.ts';
import { installCrlBundle, CrlRefused, parseCrlBundle } from '../lib/index.ts';
import { openCa } from '../lib/ca/handle.ts';
import { meshDomain } from '../lib/core/identity.ts';
import { transaction } from '../lib/sign/transaction.ts';
import { revokeSerial } from '../lib/sign/signer.ts';
import { rootCrl } from '../lib/ops/ceremony.ts';
import { DAY_MS } from '../lib/core/duration.ts';

let kit: Kit;
let dirA: string; // follows the CA through a plain tidy
let dirB: string; // sees the retired intermediate revoked by the root
let int1: X509Certificate;
let int1Old = ''; // intermediate 1's CRL from before the node's newest
let chainWithInt1 = '';

const caFile = (f: string) => fs.readFileSync(path.join(kit.caDir, f), 'utf8');
const must = async (args: string[], env: Record<string, string> = {}, faketime?: string) => {
  const r = faketime
    ? await execa('faketime', ['-f', `${faketime} x1`, CLI, ...args], {
        reject: false,
        env: { RIVET_CA_DIR: kit.caDir, RIVET_ENV_FILE: '/dev/null', ...env },
      })
    : await kit.cli(args, env);
  assert.is(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
};
const deliver = (dir: string, opts: { now?: Date } = {}) =>
  installCrlBundle(dir, caFile('crl.pem'), { chain: caFile('intermediate/chain.pem'), ...opts });
const chainNames = (dir: string) =>
  fs.readFileSync(path.join(dir, 'rivet-ca.crt'), 'utf8').match(/BEGIN CERTIFICATE/g)!.length;
const crlIssuers = (dir: string) =>
  parseCrlBundle(fs.readFileSync(path.join(dir, 'crl.pem'), 'utf8')).map((c) => c.issuerCNs[0]);
const both = (dir: string) => ['rivet-ca.crt', 'crl.pem'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));

async function refusedWith(code: string, p: Promise<unknown>): Promise<CrlRefused> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, CrlRefused);
    assert.is((err as CrlRefused).code, code, (err as Error).message);
    return err as CrlRefused;
  }
  throw new Error(`expected a ${code} refusal, got an install`);
}

test.before(async () => {
  kit = await makeKit([]);
  for (const name of ['a', 'b']) {
    const dir = await tempDir(`rivet-chain-${name}-`);
    fs.copyFileSync(path.join(kit.caDir, 'intermediate', 'chain.pem'), path.join(dir, 'rivet-ca.crt'));
    fs.copyFileSync(path.join(kit.caDir, 'crl.pem'), path.join(dir, 'crl.pem'));
    if (name === 'a') dirA = dir;
    else dirB = dir;
  }
  int1 = new X509Certificate(caFile('intermediate/int.crt'));
  await must(['rotate-intermediate']);
  for (const d of [dirA, dirB]) assert.ok((await deliver(d)).installed);
  int1Old = caFile('crl.pem');
  chainWithInt1 = caFile('intermediate/chain.pem');
  await must(['crl']);
  for (const d of [dirA, dirB]) assert.ok((await deliver(d)).installed);
  assert.equal(crlIssuers(dirA), ['Rivet Intermediate CA 2', 'Rivet Intermediate CA 1', 'Rivet Root CA']);
});
test.after(() => {
  for (const d of [kit?.home, dirA, dirB]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

test('tidy retires intermediate 1: the node keeps it (its certificates can still be valid here), refusing once', async () => {
  await must(['tidy']); // intermediate 1 issued nothing, so tidy retires it now
  assert.is(caFile('intermediate/chain.pem').match(/BEGIN CERTIFICATE/g)!.length, 2);
  const before = both(dirA);
  const err = await refusedWith('ca_still_live', deliver(dirA));
  assert.is(err.status, 409);
  assert.match(
    err.message,
    /the served chain leaves out "Rivet Intermediate CA 1", but its certificates can still be valid here/,
  );
  assert.equal(both(dirA), before);
  const again = await deliver(dirA);
  assert.is(again.reason, 'unchanged', 'reported once; the node now lists it as kept');
  assert.equal(
    again.kept?.map((k) => k.ca),
    ['Rivet Intermediate CA 1'],
  );
});

test('newer CRLs for the others are installed while intermediate 1 is kept with its CRL', async () => {
  await must(['crl']);
  const r = await deliver(dirA);
  assert.ok(r.installed);
  assert.equal(
    r.kept?.map((k) => k.ca),
    ['Rivet Intermediate CA 1'],
  );
  assert.is(chainNames(dirA), 3);
  assert.equal(crlIssuers(dirA), ['Rivet Intermediate CA 2', 'Rivet Intermediate CA 1', 'Rivet Root CA']);
});

test('once the CRL the node holds for intermediate 1 has lapsed, the next delivery drops it', async () => {
  await must(['crl'], {}, '+8d'); // the CA signs at its +8 d; the node checks at the same time
  const r = await deliver(dirA, { now: new Date(Date.now() + 8 * DAY_MS + 60_000) });
  assert.ok(r.installed);
  assert.equal(r.dropped, [
    {
      ca: 'Rivet Intermediate CA 1',
      why: 'the CRL this node holds for it has lapsed, so none of its certificates verifies here anyway',
    },
  ]);
  assert.is(chainNames(dirA), 2);
  assert.equal(crlIssuers(dirA), ['Rivet Intermediate CA 2', 'Rivet Root CA']);
});

test("the root's CRL revoking intermediate 1 drops it at once; its mark survives, so its old CRL cannot bring it back", async () => {
  const ca = openCa(kit.caDir, meshDomain('mesh'));
  await transaction(ca, 'root ceremony: revoke the retired intermediate', () =>
    revokeSerial(ca.store.root(), int1.serialNumber, 'cessationOfOperation', ca.root),
  );
  await rootCrl(ca);
  await must(['crl']); // real time again, after the +8 d CRLs above
  const r = await deliver(dirB);
  assert.ok(r.installed);
  assert.equal(r.dropped, [{ ca: 'Rivet Intermediate CA 1', why: "the root's CRL revokes it" }]);
  assert.is(chainNames(dirB), 2);
  assert.not.ok(crlIssuers(dirB).includes('Rivet Intermediate CA 1'), 'its CRL left crl.pem');
  // Bring intermediate 1 back (its certificate is genuine, signed by the root) with its CRL from
  // before the node's newest: refused on the persisted mark alone.
  const oldInt1 = int1Old
    .split(/(?<=-----END X509 CRL-----\n)/)
    .find((p) => parseCrlBundle(p)[0]?.issuerCNs[0] === 'Rivet Intermediate CA 1')!;
  const body = `${oldInt1}${caFile('crl.pem')}`;
  const before = both(dirB);
  const err = await refusedWith('crl_rollback', installCrlBundle(dirB, body, { chain: chainWithInt1 }));
  assert.match(
    err.message,
    /"Rivet Intermediate CA 1" crlNumber \d+ is older than the installed \d+ — rollback is not allowed/,
  );
  assert.equal(both(dirB), before);
});

test.run();
