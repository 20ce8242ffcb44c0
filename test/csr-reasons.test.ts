// Validators say why (lib/sign/csr.ts): a refused CSR names its actual fault, never a generic one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { tempDir } from './helpers/ca.ts';
import { csrProfileMismatch, csrPublicKey } from '../lib/sign/csr.ts';
import { RivetError } from '../lib/core/errors.ts';

async function csr(digest: string, subj = '/CN=ct8.mesh', addext: string[] = []): Promise<string> {
  const work = await tempDir();
  const key = path.join(work, 'k.pem');
  await execa('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  await execa('openssl', [
    'req',
    '-new',
    `-${digest}`,
    '-key',
    key,
    '-subj',
    subj,
    ...addext.flatMap((e) => ['-addext', e]),
    '-out',
    path.join(work, 'r.csr'),
  ]);
  return fs.readFileSync(path.join(work, 'r.csr'), 'utf8');
}

test('a SHA-1-signed CSR is refused as SHA-1, not as altered', async () => {
  const err = await csrPublicKey(await csr('sha1')).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof RivetError && err.code === 'bad_csr' && err.exitCode === 2, String(err));
  assert.match((err as Error).message, /ecdsa-with-SHA1, which is not accepted — sign it with SHA-256/);
  assert.not.match((err as Error).message, /altered/);
});

test('a SHA-256 CSR passes the same check', async () => {
  await csrPublicKey(await csr('sha256'));
});

test('csrProfileMismatch names what differs from the profile', async () => {
  const want = { cn: 'ct8.mesh' };
  assert.is(csrProfileMismatch(await csr('sha256', '/CN=ct8.mesh'), want), '0 attributes, want one extension request');
  assert.match(csrProfileMismatch(await csr('sha256', '/CN=ct9.mesh'), want)!, /subject is not exactly CN=ct8\.mesh/);
  assert.match(
    csrProfileMismatch(await csr('sha256', '/CN=ct8.mesh', ['basicConstraints=critical,CA:TRUE']), want)!,
    /not a non-critical subjectAltName/,
  );
});

test.run();
