// Keys are 0600 from the moment they exist, whatever the umask — the real CLI, watched while it
// works (writeAtomic itself: test/unit/sys/files.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { freshCa, cli, CLI } from './helpers/ca.ts';
import { execa } from 'execa';

test('the CLI under umask 000 creates no key file wider than 0600, at any moment it can be seen', async () => {
  const ca = await freshCa();
  const issuedDir = path.join(ca.store.dir, 'issued');
  const seen: string[] = [];
  // Poll the directory while issuing: any key-bearing file visible must already be 0600.
  let polling = true;
  const poller = (async () => {
    while (polling) {
      for (const f of fs.readdirSync(issuedDir)) {
        if (!/key/.test(f)) continue;
        try {
          const m = fs.statSync(path.join(issuedDir, f)).mode & 0o777;
          if (m !== 0o600) seen.push(`${f} ${m.toString(8)}`);
        } catch {
          /* renamed away */
        }
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  const r = await execa('sh', ['-c', `umask 000 && exec "$0" "$@"`, CLI, 'issue-node', 'ct111'], {
    reject: false,
    env: { RIVET_CA_DIR: ca.store.dir },
  });
  polling = false;
  await poller;
  assert.is(r.exitCode, 0, String(r.stderr));
  assert.equal(seen, []);
  for (const f of fs.readdirSync(issuedDir)) {
    const mode = fs.statSync(path.join(issuedDir, f)).mode & 0o777;
    assert.is(mode, f.endsWith('.key') ? 0o600 : 0o644, f);
  }
  const worldWritable = (await execa('find', [ca.store.dir, '-perm', '-o+w'])).stdout.trim();
  assert.is(worldWritable, '', 'nothing in the CA directory is world-writable');
  assert.is((await cli(ca, ['doctor'])).stdout.includes('has mode'), false);
});

test.run();
