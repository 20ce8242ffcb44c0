// Root ceremonies end to end (DESIGN §4.6): the real CLI and openssl on a fresh CA each time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { cli, freshCa, snapshot, tempDir, opensslOk } from './helpers/ca.ts';
import { openCa } from '../lib/ca/handle.ts';
import { meshDomain } from '../lib/core/identity.ts';
import { doctor } from '../lib/ops/doctor.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';
import { DAY_MS } from '../lib/core/duration.ts';

const keyFilesUnder = (dir: string): string[] =>
  fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.key$/.test(e.name))
    .map((e) => path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));

test('after root offline no root key is on the CA host, and leaves still issue, renew, revoke and refresh their CRLs', async () => {
  const ca = await freshCa();
  const usb = path.join(await tempDir(), 'usb');
  assert.is((await cli(ca, ['issue-node', 'ct111'])).exitCode, 0);
  const off = await cli(ca, ['root', 'offline', '--to', usb]);
  assert.is(off.exitCode, 0, off.stderr);
  assert.match(off.stdout, /root online --from/);
  assert.not.ok(fs.existsSync(ca.store.root().key));
  assert.equal(keyFilesUnder(ca.store.rootDir), []);
  assert.is(fs.statSync(path.join(usb, 'ca.key')).mode & 0o777, 0o600);
  assert.ok(fs.existsSync(path.join(usb, 'ca.crt')));

  const issue = await cli(ca, ['issue-agent', 'opus@ct111']);
  assert.is(issue.exitCode, 0, issue.stderr);
  const renew = await cli(ca, ['renew', 'ct111']);
  assert.is(renew.exitCode, 0, renew.stderr);
  assert.match(renew.stdout, /renewed\s+ct111\.mesh/);
  const revoke = await cli(ca, ['revoke', 'opus@ct111']);
  assert.match(revoke.stdout, /revoked opus@ct111/, revoke.stderr);
  const before = parseCrlBundle(await fsp.readFile((await ca.store.current()).crl, 'utf8'))[0]!.crlNumber!;
  const crl = await cli(ca, ['crl']);
  assert.is(crl.exitCode, 0, crl.stderr);
  assert.match(crl.stdout, /re-signed: intermediate 1/);
  assert.match(crl.stdout, /root key is offline/);
  const after = parseCrlBundle(await fsp.readFile((await ca.store.current()).crl, 'utf8'))[0]!;
  assert.ok(after.crlNumber! > before, 'intermediate CRL re-signed without the root');
  const v = await opensslOk([
    'verify',
    '-crl_check_all',
    '-CRLfile',
    ca.store.crlBundle,
    '-CAfile',
    ca.store.chainFile,
    ca.store.issued('ct111', 'crt'),
  ]);
  assert.ok(v.ok, v.out);

  const snap = snapshot(ca.store.dir);
  const rot = await cli(ca, ['rotate-intermediate']);
  assert.is(rot.exitCode, 1);
  assert.match(
    rot.stderr,
    /rotate-intermediate needs the root key, which is offline — bring it back with `rivet-ca root online --from DIR`/,
  );
  const rootCrl = await cli(ca, ['root', 'crl']);
  assert.match(rootCrl.stderr, /root crl needs the root key, which is offline .*root online/);
  assert.equal(snapshot(ca.store.dir), snap, 'refusals change nothing');

  const again = await cli(ca, ['root', 'offline', '--to', usb]);
  assert.is(again.exitCode, 2);
  assert.match(again.stderr, /already offline .*root online --from DIR/);
});

test('root online brings the key back only if it belongs to ca.crt', async () => {
  const ca = await freshCa();
  const usb = path.join(await tempDir(), 'usb');
  assert.is((await cli(ca, ['root', 'offline', '--to', usb])).exitCode, 0);
  const stranger = path.join(await tempDir(), 'stranger');
  fs.mkdirSync(stranger);
  const other = await freshCa();
  fs.copyFileSync(other.store.root().key, path.join(stranger, 'ca.key'));
  const wrong = await cli(ca, ['root', 'online', '--from', stranger]);
  assert.is(wrong.exitCode, 1);
  assert.match(wrong.stderr, /does not belong to the root certificate/);
  assert.not.ok(fs.existsSync(ca.store.root().key));

  const on = await cli(ca, ['root', 'online', '--from', usb]);
  assert.is(on.exitCode, 0, on.stderr);
  assert.is(fs.statSync(ca.store.root().key).mode & 0o777, 0o600);
  assert.is(fs.readFileSync(ca.store.root().key, 'utf8'), fs.readFileSync(path.join(usb, 'ca.key'), 'utf8'));
  assert.match((await cli(ca, ['root', 'online', '--from', usb])).stdout, /already online/);
  const rot = await cli(ca, ['rotate-intermediate']);
  assert.is(rot.exitCode, 0, rot.stderr);
});

test('root offline refuses a target inside the CA directory and a target holding another key', async () => {
  const ca = await freshCa();
  const inside = await cli(ca, ['root', 'offline', '--to', path.join(ca.store.dir, 'backup')]);
  assert.is(inside.exitCode, 2);
  assert.match(inside.stderr, /inside the CA directory/);
  const usb = await tempDir();
  fs.writeFileSync(path.join(usb, 'ca.key'), 'not this key\n');
  const taken = await cli(ca, ['root', 'offline', '--to', usb]);
  assert.is(taken.exitCode, 2);
  assert.match(taken.stderr, /already holds a different key/);
  assert.ok(fs.existsSync(ca.store.root().key), 'the key stays until a verified copy exists');
});

test('root crl re-signs the root CRL for 365 days by default and puts it in crl.pem', async () => {
  const ca = await freshCa();
  const old = parseCrlBundle(fs.readFileSync(ca.store.root().crl, 'utf8'))[0]!;
  const r = await cli(ca, ['root', 'crl']);
  assert.is(r.exitCode, 0, r.stderr);
  const crl = parseCrlBundle(fs.readFileSync(ca.store.root().crl, 'utf8'))[0]!;
  assert.ok(crl.crlNumber! > old.crlNumber!);
  const days = (crl.nextUpdate!.getTime() - crl.thisUpdate.getTime()) / DAY_MS;
  assert.is(Math.round(days), 365);
  const bundle = parseCrlBundle(fs.readFileSync(ca.store.crlBundle, 'utf8'));
  assert.is(bundle.length, 2);
  assert.equal(bundle[1]!.der, crl.der, 'the bundle ends with the new root CRL');
  const bad = await cli(ca, ['root', 'crl', '--days', '0']);
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /--days "0" must be a whole number from 1 to 3650/);
});

test('an encrypted root (init --passphrase-file) signs only with --root-passphrase-file, end to end', async () => {
  const dir = path.join(await tempDir(), 'ca');
  const work = await tempDir();
  const pass = path.join(work, 'pass');
  fs.writeFileSync(pass, 'vault-door correct staple\n', { mode: 0o600 });
  const init = await cli(dir, ['init', '--passphrase-file', pass]);
  assert.is(init.exitCode, 0, init.stderr);
  assert.match(init.stdout, /key encrypted/);
  assert.match(fs.readFileSync(path.join(dir, 'root', 'ca.key'), 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
  const noPass = await cli(dir, ['issue-intermediate']);
  assert.is(noPass.exitCode, 2);
  assert.match(
    noPass.stderr,
    /issue-intermediate needs the root key, but the root key is encrypted and no passphrase was given/,
  );
  assert.not.ok(fs.existsSync(path.join(dir, 'intermediate', 'int.crt')));
  const env = { RIVET_ROOT_PASSPHRASE_FILE: pass };
  assert.is((await cli(dir, ['issue-intermediate'], { env })).exitCode, 0);
  const rotNoPass = await cli(dir, ['rotate-intermediate']);
  assert.is(rotNoPass.exitCode, 2);
  assert.match(rotNoPass.stderr, /the root key is encrypted and no passphrase was given \(--root-passphrase-file\)/);
  assert.is((await cli(dir, ['rotate-intermediate', '--root-passphrase-file', pass])).exitCode, 0);
  assert.is((await cli(dir, ['root', 'crl'], { env })).exitCode, 0);
  const offNoPass = await cli(dir, ['root', 'offline', '--to', path.join(work, 'usb')]);
  assert.is(offNoPass.exitCode, 2);
  assert.match(offNoPass.stderr, /encrypted — give its passphrase with --root-passphrase-file/);
  assert.is((await cli(dir, ['root', 'offline', '--to', path.join(work, 'usb')], { env })).exitCode, 0);
  assert.is((await cli(dir, ['root', 'online', '--from', path.join(work, 'usb')], { env })).exitCode, 0);
  // crl from cron without the passphrase: intermediates refresh, the root CRL is left for a ceremony
  const ca = openCa(dir, meshDomain('mesh'));
  const r = await cli(dir, ['crl']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /re-signed: intermediate 2, intermediate 1 .*\n.*encrypted and no passphrase/);
  assert.ok((await doctor(ca)).some((f) => f.level === 'warn' && /root key is still on this host/.test(f.what)));
});

test('doctor warns on the root CRL window, an intermediate CRL window, half-life and the root key on disk', async () => {
  const ca = await freshCa();
  const findings = await doctor(ca);
  assert.ok(
    findings.some(
      (f) => f.level === 'warn' && /root key is still on this host/.test(f.what) && /root offline/.test(f.fix ?? ''),
    ),
  );
  const d = await cli(ca, ['doctor']);
  assert.is(d.exitCode, 1, 'non-zero while the root key is on disk');

  assert.is((await cli(ca, ['root', 'crl', '--days', '30'])).exitCode, 0);
  const usb = path.join(await tempDir(), 'usb');
  assert.is((await cli(ca, ['root', 'offline', '--to', usb])).exitCode, 0);
  const short = await cli(ca, ['doctor']);
  assert.is(short.exitCode, 1);
  assert.match(
    short.stdout,
    /WARN\s+root CRL lapses .*\(\d+ days\) — bring the root online and run `rivet-ca root crl`/,
  );
  assert.not.match(short.stdout, /root key is still on this host/);

  const in5days = new Date(Date.now() + 5 * DAY_MS);
  const later = await doctor(ca, in5days);
  assert.ok(later.some((f) => f.level === 'warn' && /intermediate 1 CRL lapses/.test(f.what)));
  const in3years = new Date(Date.now() + 3 * 365 * DAY_MS);
  const old = await doctor(ca, in3years);
  assert.ok(
    old.some(
      (f) =>
        f.level === 'warn' &&
        /intermediate 1 is past half its life/.test(f.what) &&
        /rotate-intermediate/.test(f.fix ?? ''),
    ),
  );
  assert.ok(old.some((f) => f.level === 'fail' && /root CRL lapses/.test(f.what)));
});

test.run();
