// lib/core/limits.ts derives the largest CRL bundle from the caps and the PEM size of one revoked
// entry. This measures that size on real CRLs signed by openssl (P-256 and an RSA-4096 root's
// worth of overhead aside): if openssl's encoding grew, the receivers' limit would be too small.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { freshCa } from './helpers/ca.ts';
import { issueBatch } from '../lib/ops/batch-issue.ts';
import { leafValidity } from '../lib/sign/validity.ts';
import { agentId, nodeId } from '../lib/core/identity.ts';
import { readDb } from '../lib/ca/database.ts';
import { revokeLocked } from '../lib/sign/revocation.ts';
import { transaction } from '../lib/sign/transaction.ts';
import {
  CRL_ENTRY_PEM_BYTES,
  CRL_OVERHEAD_PEM_BYTES,
  MAX_CRL_BUNDLE_BYTES,
  MAX_CRL_ENTRIES,
} from '../lib/core/limits.ts';

test('one revoked entry adds at most CRL_ENTRY_PEM_BYTES to the CRL; the bundle limit covers MAX_CRL_ENTRIES', async () => {
  const ca = await freshCa();
  const n = 200;
  const items = Array.from({ length: n }, (_, i) => ({
    id: { kind: 'agent' as const, agentId: agentId(`a${i}`), nodeId: nodeId('ct1') },
    sans: [],
  }));
  await issueBatch(ca, items, { validity: leafValidity() });
  const issuer = await ca.store.current();
  const crlSize = () => fs.statSync(issuer.crl).size;
  const empty = crlSize();
  const rows = await readDb(issuer.dir);
  assert.is(rows.length, n);
  const t0 = Date.now();
  await transaction(ca, 'test revoke', () =>
    revokeLocked(
      ca,
      rows.map((r) => ({ issuer, serial: r.serial })),
      'keyCompromise',
    ),
  );
  const ms = Date.now() - t0;
  const perEntry = (crlSize() - empty) / n;
  process.stderr.write(
    `  [limits] ${perEntry.toFixed(1)} PEM bytes per revoked entry (assumed ${CRL_ENTRY_PEM_BYTES}); empty CRL ${empty} bytes; bundle limit ${MAX_CRL_BUNDLE_BYTES} bytes for ${MAX_CRL_ENTRIES} entries; ${n} serials revoked in ${ms} ms (one write, one CRL)\n`,
  );
  assert.ok(perEntry > 60 && perEntry <= CRL_ENTRY_PEM_BYTES, `${perEntry} bytes per entry`);
  assert.ok(empty <= CRL_OVERHEAD_PEM_BYTES, `empty CRL ${empty} bytes`);
  assert.ok(MAX_CRL_BUNDLE_BYTES >= MAX_CRL_ENTRIES * perEntry + 3 * empty);
});

test.run();
