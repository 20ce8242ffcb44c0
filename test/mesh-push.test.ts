// CRL push settings and edge cases (DESIGN §5): no nodes, a bad template refused before anything changes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { makeKit, type Kit } from './helpers/pki-kit.ts';

let kit: Kit;
test.before(async () => {
  kit = await makeKit(['opus@ct111', 'grok@ct111']);
});
test.after(() => {
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

test('revoke with a bad push template changes nothing (exit 2)', async () => {
  const r = await kit.cli(['revoke', 'grok@ct111'], { RIVET_CRL_PUSH_URL: 'https://{host}/crl' });
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /RIVET_CRL_PUSH_URL "https:\/\/\{host\}\/crl" has unknown placeholder/);
  const list = await kit.cli(['list', '--json']);
  assert.ok(
    JSON.parse(list.stdout).some((c: { cn: string; status: string }) => c.cn === 'grok@ct111' && c.status === 'valid'),
  );
});

test('revoke pushes nowhere when no node holds a valid node certificate', async () => {
  const r = await kit.cli(['revoke', 'opus@ct111']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /push: no node holds a valid node certificate — nothing to push to/);
});

test.run();
