// openssl `ca` does not lock its database; the mesh's earlier bash script lost 7 of 20 rows when
// runs overlapped. Fifty real CLI processes at once must give fifty certificates and rows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { freshCa, cli } from './helpers/ca.ts';
import { readDb } from '../lib/ca/database.ts';
import { parseCertPem } from '../lib/x509/cert.ts';

test('50 issue-agent processes started at once: 50 certs, 50 rows, 50 distinct serials', async () => {
  const ca = await freshCa();
  const names = Array.from({ length: 50 }, (_, i) => `agent${i}@ct${100 + (i % 5)}`);
  const results = await Promise.all(names.map((n) => cli(ca, ['issue-agent', n])));
  const failures = results.filter((r) => r.exitCode !== 0);
  assert.is(failures.length, 0, failures.map((f) => f.stderr).join('\n'));
  const rows = await readDb(path.join(ca.store.dir, 'intermediate'));
  assert.is(rows.length, 50);
  assert.is(new Set(rows.map((r) => r.serial)).size, 50);
  const serials = names.map(
    (n) => parseCertPem(fs.readFileSync(path.join(ca.store.dir, 'issued', `${n}.crt`), 'utf8')).serial,
  );
  assert.is(new Set(serials).size, 50);
  assert.equal([...serials].sort(), rows.map((r) => r.serial).sort(), 'every issued file is in the database');
  assert.equal(rows.map((r) => r.cn).sort(), [...names].sort());
  assert.not.ok(fs.existsSync(ca.store.lockFile), 'lock released');
  const leftovers = fs.readdirSync(path.join(ca.store.dir, 'issued')).filter((f) => f.startsWith('.rivet-tmp-'));
  assert.equal(leftovers, [], 'no temp files left');
});

test.run();
