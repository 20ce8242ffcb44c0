// SIGKILL during rotate-intermediate (DESIGN §8): at every step the CA has a complete current
// intermediate, and the next change finishes (or, before the commit, forgets) the rotation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { cli, freshCa, tempDir, opensslOk } from './helpers/ca.ts';
import { openCa, type Ca } from '../lib/ca/handle.ts';
import { meshDomain } from '../lib/core/identity.ts';
import { publicKeyOfPrivatePem } from '../lib/core/keys.ts';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Issuer } from '../lib/ca/store.ts';

const BEFORE_COMMIT = ['rotate-built'];
const AFTER_COMMIT = [
  'rotate-committed',
  'rotate-linked-old',
  'rotate-moved-old',
  'rotate-clearing',
  'rotate-installing',
  'rotate-published',
  'rotate-switched',
];

function complete(issuer: Issuer): void {
  const cert = new X509Certificate(fs.readFileSync(issuer.cert));
  const key = publicKeyOfPrivatePem(fs.readFileSync(issuer.key, 'utf8'));
  assert.ok(cert.checkPrivateKey(createPrivate(issuer.key)), `${issuer.dir}: key matches certificate`);
  assert.ok(key, 'key readable');
  assert.ok(
    cert.subject.endsWith(`Rivet Intermediate CA ${issuer.generation}`),
    `${issuer.dir} holds generation ${issuer.generation}`,
  );
  assert.ok(
    fs.existsSync(path.join(issuer.dir, 'index.txt')) && fs.existsSync(issuer.crl),
    `${issuer.dir} has its database and CRL`,
  );
}
const createPrivate = (file: string) => createPrivateKey(fs.readFileSync(file));

let template: Ca;

test.before(async () => {
  template = await freshCa();
  assert.is((await cli(template, ['issue-node', 'ct111'])).exitCode, 0);
});

for (const point of [...BEFORE_COMMIT, ...AFTER_COMMIT]) {
  test(`killed at ${point}: a complete current intermediate at once, and the next change ${BEFORE_COMMIT.includes(point) ? 'forgets' : 'finishes'} the rotation`, async () => {
    const dir = path.join(await tempDir(), 'ca');
    await execa('cp', ['-a', template.store.dir, dir]);
    const ca = openCa(dir, meshDomain('mesh'));
    const killed = await cli(ca, ['rotate-intermediate'], { env: { RIVET_CRASH_AT: point } });
    assert.is(killed.exitCode, -1, `killed (stderr: ${killed.stderr})`);

    // Before any recovery: readers see one complete current intermediate and no duplicates.
    const current = await ca.store.current();
    complete(current);
    const gens = (await ca.store.intermediates()).map((i) => i.generation);
    assert.equal(gens, BEFORE_COMMIT.includes(point) ? [1] : [2, 1]);
    for (const i of await ca.store.intermediates()) complete(i);

    // The next change repairs.
    const crl = await cli(ca, ['crl']);
    assert.is(crl.exitCode, 0, crl.stderr);
    assert.not.ok(fs.existsSync(ca.store.nextDir), 'no rotation left pending');
    const leftovers = fs
      .readdirSync(dir, { recursive: true })
      .map(String)
      .filter((n) => n.includes('.rivet-tmp-'));
    assert.equal(leftovers, []);
    const after = await ca.store.intermediates();
    assert.equal(
      after.map((i) => i.generation),
      BEFORE_COMMIT.includes(point) ? [1] : [2, 1],
    );
    for (const i of after) complete(i);
    assert.is(after[0]!.dir, ca.store.intermediateDir);
    const certs = fs.readFileSync(ca.store.chainFile, 'utf8').match(/BEGIN CERTIFICATE/g)!.length;
    assert.is(certs, after.length + 1);

    // Issuance and verification work on the repaired CA, old leaf included.
    assert.is((await cli(ca, ['issue-node', 'ct112'])).exitCode, 0);
    for (const leaf of ['ct111', 'ct112']) {
      const v = await opensslOk([
        'verify',
        '-crl_check_all',
        '-CRLfile',
        ca.store.crlBundle,
        '-CAfile',
        ca.store.chainFile,
        ca.store.issued(leaf, 'crt'),
      ]);
      assert.ok(v.ok, `${leaf}: ${v.out}`);
    }
    if (BEFORE_COMMIT.includes(point))
      assert.is((await cli(ca, ['rotate-intermediate'])).exitCode, 0, 'a retry rotates');
  });
}

test.run();
