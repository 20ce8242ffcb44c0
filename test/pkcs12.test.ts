// lib/x509/pkcs12.ts and loadMeshTls's user identities: a p12 from `issue-user --p12` gives exactly
// the key and certificates of issued/, a cert + key pair loads as they are, and every bad input is
// one bad_p12 / bad_options error naming the file — never a crash, never the passphrase.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { execa } from 'execa';
import { makeKit, type Kit } from './helpers/pki-kit.ts';
import { readPkcs12 } from '../lib/x509/pkcs12.ts';
import { loadMeshTls, RivetError, type MeshTls } from '../lib/index.ts';
import { followMeshTls, reloadWatchers } from '../lib/mesh/watch.ts';

let kit: Kit;
let dir: string;
let p12: string;
let pass: string;
const PASS = 'correct horse battery';

function refusal(fn: () => unknown): RivetError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RivetError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

test.before(async () => {
  kit = await makeKit(['ct111']);
  dir = await kit.nodeDir('ct111');
  p12 = path.join(kit.home, 'phil.p12');
  pass = path.join(kit.home, 'p12.pass');
  fs.writeFileSync(pass, `${PASS}\n`);
  const r = await kit.cli(['issue-user', 'phil@external', '--p12', p12, '--passphrase-file', pass]);
  assert.is(r.exitCode, 0, r.stderr);
});

test('a p12 from issue-user gives the issued key and certificate chain, leaf first', () => {
  const got = readPkcs12(fs.readFileSync(p12), PASS, p12);
  const issued = path.join(kit.caDir, 'issued');
  assert.is(got.cert, fs.readFileSync(path.join(issued, 'phil@external.crt'), 'utf8'));
  const want = createPrivateKey(fs.readFileSync(path.join(issued, 'phil@external.key'))).export({
    type: 'pkcs8',
    format: 'der',
  });
  assert.ok(createPrivateKey(got.key).export({ type: 'pkcs8', format: 'der' }).equals(want));
});

test('loadMeshTls takes p12 + passphraseFile or cert + key, with the chain and CRL of dir', () => {
  const a = loadMeshTls({ dir, p12, passphraseFile: pass });
  const issued = path.join(kit.caDir, 'issued');
  const b = loadMeshTls({
    dir,
    cert: path.join(issued, 'phil@external.crt'),
    key: path.join(issued, 'phil@external.key'),
  });
  assert.is(a.cert.toString(), b.cert.toString());
  assert.ok(a.ca.equals(fs.readFileSync(path.join(dir, 'rivet-ca.crt'))));
  assert.ok(a.crl.length >= 2, 'the CRL bundle as one PEM per CRL');
});

test('a wrong passphrase, a damaged file and a legacy p12 are bad_p12 errors naming the file', async () => {
  const wrong = refusal(() => readPkcs12(fs.readFileSync(p12), 'wrong passphrase', p12));
  assert.is(wrong.code, 'bad_p12');
  assert.is(wrong.exitCode, 2);
  assert.match(wrong.message, /phil\.p12" does not open with this passphrase/);
  assert.not.match(wrong.message, /wrong passphrase/);
  const torn = fs.readFileSync(p12).subarray(0, 200);
  assert.is(refusal(() => readPkcs12(torn, PASS, 'torn.p12')).code, 'bad_p12');
  assert.is(refusal(() => readPkcs12(Buffer.from('not a p12\n\0'), PASS, 'text.p12')).code, 'bad_p12');
  const legacy = path.join(kit.home, 'legacy.p12');
  const issued = path.join(kit.caDir, 'issued');
  const made = await execa(
    'openssl',
    [
      'pkcs12',
      '-export',
      '-legacy',
      '-in',
      path.join(issued, 'phil@external.crt'),
      '-inkey',
      path.join(issued, 'phil@external.key'),
      '-passout',
      'env:P',
      '-out',
      legacy,
    ],
    { env: { P: PASS, OPENSSL_CONF: '/dev/null' }, reject: false },
  );
  assert.is(made.exitCode, 0, made.stderr);
  const e = refusal(() => readPkcs12(fs.readFileSync(legacy), PASS, legacy));
  assert.is(e.code, 'bad_p12');
  assert.match(e.message, /re-export it with `rivet-ca export-p12`/);
});

test("a follower of a p12 identity reloads the p12 when the CRL changes, never the node's own cert", async () => {
  const phil = loadMeshTls({ dir, p12, passphraseFile: pass });
  const applied: MeshTls[] = [];
  const follow = followMeshTls({ dir, agent: phil.agent, domain: phil.domain }, phil, (m) => applied.push(m));
  try {
    assert.is((await kit.cli(['crl'])).exitCode, 0);
    fs.copyFileSync(path.join(kit.caDir, 'crl.pem'), path.join(dir, 'crl.pem.tmp'));
    fs.renameSync(path.join(dir, 'crl.pem.tmp'), path.join(dir, 'crl.pem'));
    await reloadWatchers(dir);
    assert.is(applied.length, 1, 'the new CRL was applied');
    assert.is(applied[0]!.cert.toString(), phil.cert.toString(), 'still phil@external, not ct111');
    assert.not.equal(applied[0]!.crl.map(String), phil.crl.map(String));
  } finally {
    follow.stop();
  }
});

test('one identity per call: mixing agent, cert/key and p12 is refused naming what was given', () => {
  const mixed = refusal(() => loadMeshTls({ dir, agent: 'opus', p12, passphraseFile: pass }));
  assert.is(mixed.code, 'bad_options');
  assert.match(mixed.message, /choose one identity: .*\(got agent, p12, passphraseFile\)/);
  assert.is(refusal(() => loadMeshTls({ dir, cert: 'x.crt' })).code, 'bad_options', 'cert without key');
  assert.is(refusal(() => loadMeshTls({ dir, p12 })).code, 'bad_options', 'p12 without passphrase file');
  const missing = refusal(() => loadMeshTls({ dir, p12: path.join(kit.home, 'nope.p12'), passphraseFile: pass }));
  assert.match(missing.message, /cannot read PKCS#12 file ".*nope\.p12" \(ENOENT\)/);
});

test.run();
