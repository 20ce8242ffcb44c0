// The root key in a PKCS#11 token (SoftHSM2, a fresh token per run in a temp SOFTHSM2_CONF), used
// through OpenSSL's pkcs11 engine; and the rule that no PIN or passphrase reaches openssl's argv,
// checked by a PATH shim that logs every argv before exec'ing the real openssl.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa, execaSync } from 'execa';
import { cli, tempDir, opensslOk, ROOT } from './helpers/ca.ts';
import { parsePkcs11Uri } from '../lib/sign/pkcs11.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';
import { UsageError } from '../lib/core/errors.ts';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '730519';
const PASSPHRASE = 'quartz-lantern-9f3e passphrase';
const URI = 'pkcs11:token=rivet-root;object=rivet-root-key';

let work: string;
let env: Record<string, string>;
let argvLog: string;

test.before(async () => {
  // The test setup installs what is missing (idempotent; apt-get only when a binary is absent).
  await execa('sh', [path.join(ROOT, 'test', 'setup', 'install-deps.sh')], { stdio: 'inherit' });
  work = await tempDir('rivet-pkcs11-');
  fs.mkdirSync(path.join(work, 'tokens'));
  fs.writeFileSync(
    path.join(work, 'softhsm2.conf'),
    `directories.tokendir = ${work}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  const real = execaSync('sh', ['-c', 'command -v openssl']).stdout.trim();
  argvLog = path.join(work, 'openssl-argv.log');
  const shim = path.join(work, 'openssl-shim');
  fs.writeFileSync(shim, `#!/bin/sh\nprintf '%s\\n' "$*" >> "${argvLog}"\nexec ${real} "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(work, 'pin'), `${PIN}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(work, 'pass'), `${PASSPHRASE}\n`, { mode: 0o600 });
  env = { SOFTHSM2_CONF: path.join(work, 'softhsm2.conf'), RIVET_OPENSSL: shim };
  // A fresh token and a key pair made inside it (the HSM's own tooling; the PIN by env, not argv).
  await execa(
    'softhsm2-util',
    ['--init-token', '--free', '--label', 'rivet-root', '--pin', PIN, '--so-pin', '11223344'],
    { env },
  );
  await execa(
    'pkcs11-tool',
    [
      '--module',
      MODULE,
      '--token-label',
      'rivet-root',
      '--login',
      '--pin',
      'env:RIVET_TEST_PIN',
      '--keypairgen',
      '--key-type',
      'EC:prime256v1',
      '--label',
      'rivet-root-key',
      '--id',
      '01',
    ],
    { env: { ...env, RIVET_TEST_PIN: PIN } },
  );
});

const keyFiles = (dir: string) =>
  fs
    .readdirSync(dir, { recursive: true })
    .map(String)
    .filter((n) => /\.key$/.test(n) && n.includes('root'));

test('the whole lifecycle with the root in SoftHSM: init, intermediate, rotate, root CRL', async () => {
  const dir = path.join(work, 'ca');
  const rootEnv = { ...env, RIVET_ROOT_PASSPHRASE_FILE: path.join(work, 'pin') };
  const init = await cli(
    dir,
    ['init', '--pkcs11', URI, '--pkcs11-module', MODULE, '--pin-file', path.join(work, 'pin')],
    { env },
  );
  assert.is(init.exitCode, 0, init.stderr);
  assert.match(init.stdout, /key in PKCS#11 token pkcs11:token=rivet-root;object=rivet-root-key;type=private/);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'root', 'pkcs11.json'), 'utf8')), {
    uri: `${URI};type=private`,
    module: MODULE,
  });

  const noPin = await cli(dir, ['issue-intermediate'], { env });
  assert.is(noPin.exitCode, 2);
  assert.match(noPin.stderr, /in a PKCS#11 token and no PIN was given \(--root-passphrase-file\)/);

  assert.is((await cli(dir, ['issue-intermediate'], { env: rootEnv })).exitCode, 0);
  assert.is((await cli(dir, ['issue-node', 'ct111'], { env })).exitCode, 0);
  const rot = await cli(dir, ['rotate-intermediate'], { env: rootEnv });
  assert.is(rot.exitCode, 0, rot.stderr);
  assert.is((await cli(dir, ['issue-node', 'ct112'], { env })).exitCode, 0);
  const before = parseCrlBundle(fs.readFileSync(path.join(dir, 'root', 'crl.pem'), 'utf8'))[0]!.crlNumber!;
  const crl = await cli(dir, ['root', 'crl'], { env: rootEnv });
  assert.is(crl.exitCode, 0, crl.stderr);
  assert.ok(parseCrlBundle(fs.readFileSync(path.join(dir, 'root', 'crl.pem'), 'utf8'))[0]!.crlNumber! > before);
  const rev = await cli(dir, ['revoke', 'ct111'], { env });
  assert.match(rev.stdout, /revoked ct111\.mesh .*\(intermediate 1\)/, rev.stderr);

  // Everything chains to the token-signed root, CRLs included.
  for (const leaf of ['ct111', 'ct112']) {
    const v = await opensslOk([
      'verify',
      '-crl_check_all',
      '-CRLfile',
      path.join(dir, 'crl.pem'),
      '-CAfile',
      path.join(dir, 'intermediate', 'chain.pem'),
      path.join(dir, 'issued', `${leaf}.crt`),
    ]);
    if (leaf === 'ct111') assert.match(v.out, /certificate revoked/);
    else assert.ok(v.ok, v.out);
  }
  assert.equal(keyFiles(dir), [], 'no root key file ever existed');
  const log = fs.readFileSync(argvLog, 'utf8');
  assert.ok(
    log.split('\n').filter((l) => l.includes('-engine pkcs11 -keyform engine')).length >= 4,
    'root signing went through the token',
  );
  const offline = await cli(dir, ['root', 'offline', '--to', path.join(work, 'usb')], { env });
  assert.is(offline.exitCode, 2);
  assert.match(offline.stderr, /in a PKCS#11 token .* never on disk/);
  const doctor = await cli(dir, ['doctor'], { env });
  assert.match(doctor.stdout, /ok\s+root key in PKCS#11 token/);
  assert.not.match(doctor.stdout, /root key is still on this host/);
});

test('a PIN in the URI is refused, so it can never reach argv', () => {
  assert.throws(
    () => parsePkcs11Uri('pkcs11:token=rivet-root;object=k?pin-value=1234'),
    (e: Error) => e instanceof UsageError && /must not carry the PIN/.test(e.message),
  );
  assert.throws(() => parsePkcs11Uri('pkcs11:token=rivet-root'), /names no key/);
  assert.throws(() => parsePkcs11Uri('pkcs11:object=k;type=cert'), /type=private/);
  assert.throws(() => parsePkcs11Uri('pkcs11:object=k"; rm -rf'), /not valid/);
  assert.is(parsePkcs11Uri('pkcs11:token=t;object=k'), 'pkcs11:token=t;object=k;type=private');
});

test('no PIN or passphrase appears in any openssl argv (token root and encrypted root, every ceremony)', async () => {
  const dir = path.join(work, 'ca-pass');
  const pass = path.join(work, 'pass');
  const penv = { ...env, RIVET_ROOT_PASSPHRASE_FILE: pass };
  assert.is((await cli(dir, ['init', '--passphrase-file', pass], { env })).exitCode, 0);
  for (const args of [
    ['issue-intermediate'],
    ['issue-node', 'ct111'],
    ['rotate-intermediate'],
    ['root', 'crl'],
    ['crl'],
    ['root', 'offline', '--to', path.join(work, 'usb-pass')],
    ['root', 'online', '--from', path.join(work, 'usb-pass')],
    ['export-p12', 'ct111', '--passphrase-file', pass],
  ]) {
    const r = await cli(dir, args, { env: penv });
    assert.is(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  const log = fs.readFileSync(argvLog, 'utf8');
  assert.ok(log.split('\n').length > 20, 'the shim saw the openssl runs');
  assert.ok(log.includes('-passin env:'), 'secrets went by environment');
  for (const secret of [PIN, PASSPHRASE, 'quartz-lantern'])
    assert.not.ok(log.includes(secret), `${secret} leaked into argv`);
  assert.not.match(log, /pass:|pin-value|-pin /);
});

test.run();
