// Serial numbers (DESIGN §3: random, at least 64 bits of entropy, unique) in batch runs too. One
// `openssl ca -infiles` run numbers its certificates consecutively from one random start
// (…841, …842, …843), so a roster or a group of enrollments used to carry serials an attacker
// holding one could predict for the others. Each certificate now gets its own `openssl ca
// -rand_serial` run; these tests fail on consecutive serials.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { cli, freshCa, opensslOk, tempDir } from './helpers/ca.ts';
import { readDb } from '../lib/ca/database.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { newKeysAndCsrs } from '../lib/sign/csr.ts';
import { leafProfile } from '../lib/sign/profile.ts';
import { signLeaves } from '../lib/ops/issue.ts';
import { leafValidity } from '../lib/sign/validity.ts';
import { initIssuerDb } from '../lib/sign/signer.ts';
import { nodeId } from '../lib/core/identity.ts';

const GAP = 2n ** 32n;

/** Every serial at least 64 bits long, all distinct, no two within 2^32 of each other. */
function assertSpread(serials: readonly string[], what: string): void {
  const values = serials.map((s) => BigInt(`0x${s}`)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  assert.is(new Set(values).size, values.length, `${what}: distinct serials`);
  for (const v of values)
    assert.ok(v.toString(2).length >= 64, `${what}: serial ${v.toString(16)} has at least 64 bits`);
  let closest = -1n;
  for (let i = 1; i < values.length; i++) {
    const d = values[i]! - values[i - 1]!;
    assert.ok(
      d > GAP,
      `${what}: serials ${values[i - 1]!.toString(16)} and ${values[i]!.toString(16)} are ${d} apart, within 2^32`,
    );
    if (closest < 0n || d < closest) closest = d;
  }
  process.stderr.write(
    `  [serials] ${what}: ${values.length} serials, ${Math.min(...values.map((v) => v.toString(2).length))}–${Math.max(...values.map((v) => v.toString(2).length))} bits, closest pair 2^${closest.toString(2).length - 1} apart\n`,
  );
}

test('`issue --roster` of 100 nodes: 100 serials, none within 2^32 of another, each in the database with its certificate', async () => {
  const ca = await freshCa();
  const roster = path.join(await tempDir(), 'roster');
  await fsp.writeFile(roster, Array.from({ length: 100 }, (_, i) => `r${i}`).join('\n'));
  const r = await cli(ca, ['issue', '--roster', roster, '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Array<{ identity: string; serial: string }>;
  assert.is(out.length, 100);
  assertSpread(
    out.map((o) => o.serial),
    'issue --roster',
  );
  const rows = new Map((await readDb(ca.store.intermediateDir)).map((e) => [String(e.serial), e]));
  for (const o of out) {
    assert.is(rows.get(o.serial)?.cn, `${o.identity}.mesh`, `${o.identity}: its serial is its row`);
    assert.is(parseCertPem(fs.readFileSync(ca.store.issued(o.identity, 'crt'), 'utf8')).serial, o.serial);
    assert.ok(
      fs.existsSync(path.join(ca.store.intermediateDir, 'newcerts', `${o.serial}.pem`)),
      `${o.identity}: newcerts copy`,
    );
  }
  const chain = ca.store.chainFile;
  assert.ok((await opensslOk(['verify', '-x509_strict', '-CAfile', chain, ca.store.issued('r0', 'crt')])).ok);
});

test('one signLeaves call of 100 profile CSRs (the shared-config path the service and roster use): spread serials', async () => {
  const ca = await freshCa();
  const work = await tempDir('rivet-serials-');
  const scratch = path.join(work, 'db');
  await fsp.mkdir(scratch);
  await initIssuerDb(scratch);
  const ids = Array.from({ length: 100 }, (_, i) => ({ kind: 'node' as const, nodeId: nodeId(`s${i}`) }));
  const made = await newKeysAndCsrs(
    ids.map((id, i) => ({
      keyPath: path.join(work, `k${i}.key`),
      type: 'ec-p256' as const,
      subject: leafProfile(id, ca.domain),
    })),
  );
  const requests = made.map((m, i) => {
    if (m instanceof Error) throw m;
    return { id: ids[i]!, csrPem: m.csrPem, publicKey: m.publicKey, sans: [] };
  });
  const issuer = { ...(await ca.store.current()), dir: scratch };
  const signed = await signLeaves(ca, issuer, requests, leafValidity(), false);
  const serials = signed.map((s) => {
    if (s instanceof Error) throw s;
    return s.serial;
  });
  assertSpread(serials, 'signLeaves batch');
  const rows = await readDb(scratch);
  assert.is(rows.length, 100, 'one database row per certificate, nothing else');
  assert.equal(new Set(rows.map((e) => e.serial)), new Set(serials));
});

test.run();
