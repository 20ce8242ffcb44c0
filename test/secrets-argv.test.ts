// No secret on a command line: argv is visible to every user of the host. A PATH shim records the
// argv of every openssl run while PKCS#12 files are made; the passphrase must appear in none.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { freshCa, cli, tempDir } from './helpers/ca.ts';

test('export-p12 and issue-user --p12 never put the passphrase in openssl argv', async () => {
  const ca = await freshCa();
  const dir = await tempDir();
  const log = path.join(dir, 'argv.log');
  const shim = path.join(dir, 'openssl');
  const real = (await execa('sh', ['-c', 'command -v openssl'])).stdout.trim();
  fs.writeFileSync(
    shim,
    `#!/bin/sh\nprintf '%s\\0' "$@" >> '${log}'\nprintf '\\n' >> '${log}'\nexec '${real}' "$@"\n`,
    { mode: 0o755 },
  );
  const secret = 'correct-horse-battery-staple-42';
  const passFile = path.join(dir, 'pass');
  fs.writeFileSync(passFile, `${secret}\n`, { mode: 0o600 });
  const env = { RIVET_OPENSSL: shim };

  assert.is((await cli(ca, ['issue-agent', 'opus@ct111'], { env })).exitCode, 0);
  const p12 = await cli(ca, ['export-p12', 'opus@ct111', '--passphrase-file', passFile], { env });
  assert.is(p12.exitCode, 0, p12.stderr);
  const user = await cli(
    ca,
    ['issue-user', 'alice@external', '--p12', path.join(dir, 'alice.p12'), '--passphrase-file', passFile],
    { env },
  );
  assert.is(user.exitCode, 0, user.stderr);

  const argv = fs.readFileSync(log, 'utf8');
  assert.ok(argv.includes('pkcs12'), 'the shim saw the pkcs12 runs');
  assert.is(argv.split('\n').filter((l) => l.includes('pkcs12')).length, 2);
  assert.not.ok(argv.includes(secret), 'passphrase never in argv');
  assert.not.ok(argv.includes(secret.slice(0, 12)), 'not even part of it');
  for (const f of [path.join(ca.store.dir, 'issued', 'opus@ct111.p12'), path.join(dir, 'alice.p12')]) {
    assert.is(fs.statSync(f).mode & 0o777, 0o600, `${f} holds a key`);
    const info = await execa('openssl', ['pkcs12', '-in', f, '-noout', '-passin', `file:${passFile}`], {
      reject: false,
    });
    assert.is(info.exitCode, 0, `openssl reads ${f} with the passphrase: ${info.stderr}`);
  }
  assert.not.ok(fs.readFileSync(ca.store.auditLog, 'utf8').includes(secret), 'nor in audit.log');
});

test('a passphrase is never accepted on the command line and a short one is refused', async () => {
  const ca = await freshCa();
  await cli(ca, ['issue-agent', 'opus@ct111']);
  const r = await cli(ca, ['export-p12', 'opus@ct111', '--passphrase', 'hunter2hunter2']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /Unknown argument: passphrase/);
  const dir = await tempDir();
  fs.writeFileSync(path.join(dir, 'short'), 'abc');
  const s = await cli(ca, ['export-p12', 'opus@ct111', '--passphrase-file', path.join(dir, 'short')]);
  assert.is(s.exitCode, 2);
  assert.match(s.stderr, /at least 8 characters/);
  const none = await cli(ca, ['export-p12', 'opus@ct111']);
  assert.is(none.exitCode, 2, 'no TTY and no file: refused, not hung');
  assert.match(none.stderr, /--passphrase-file FILE \(never on the command line\)/);
});

test.run();
