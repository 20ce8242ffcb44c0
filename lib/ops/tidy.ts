// `tidy` (DESIGN §4.5): expired entries leave the live database for archive/, so every operation
// that reads index.txt stays as fast in year five as on day one, and expired revoked serials leave
// the CRL (RFC 5280 §5: a CRL need not list a certificate after it expires).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type Ca } from '../ca/handle.ts';
import { readDb } from '../ca/database.ts';
import { ensureDir, exists, writeAtomic } from '../sys/files.ts';
import { refreshCrlsLocked } from '../sign/crl-sign.ts';
import { audit } from '../sys/audit.ts';
import type { Issuer } from '../ca/store.ts';
import { retireDrainedLocked } from './rotate.ts';
import { withCrlPending, transaction } from '../sign/transaction.ts';

/** `retired`: previous intermediates that had no unexpired leaf left and left chain and bundle. */
export type TidyResult = { archived: number; kept: number; retired: number[] };

async function tidyIssuer(issuer: Issuer, now: Date): Promise<{ archived: number; kept: number }> {
  const entries = await readDb(issuer.dir);
  const expired = entries.filter((e) => e.notAfter.getTime() <= now.getTime());
  if (expired.length === 0) return { archived: 0, kept: entries.length };
  const archive = path.join(issuer.dir, 'archive');
  await ensureDir(path.join(archive, 'newcerts'));
  // 1. Archive first (idempotent: a rerun after a crash skips serials already archived).
  const archiveIndex = path.join(archive, 'index.txt');
  const already = new Set((await readDb(archive)).map((e) => e.serial));
  const add = expired
    .filter((e) => !already.has(e.serial))
    .map((e) => `${e.line}\n`)
    .join('');
  if (add) {
    const fh = await fsp.open(archiveIndex, 'a', 0o600);
    try {
      await fh.appendFile(add);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  for (const e of expired) {
    const from = path.join(issuer.dir, 'newcerts', `${e.serial}.pem`);
    if (await exists(from)) await fsp.rename(from, path.join(archive, 'newcerts', `${e.serial}.pem`));
  }
  // 2. Then the live database, atomically.
  const keep = entries.filter((e) => e.notAfter.getTime() > now.getTime());
  await writeAtomic(path.join(issuer.dir, 'index.txt'), keep.map((e) => `${e.line}\n`).join(''), 0o600);
  return { archived: expired.length, kept: keep.length };
}

export async function tidy(ca: Ca, now = new Date()): Promise<TidyResult> {
  return transaction(ca, 'tidy', async () => {
    const total: TidyResult = { archived: 0, kept: 0, retired: [] };
    const touched: Issuer[] = [];
    await withCrlPending(ca, async () => {
      for (const issuer of await ca.store.intermediates()) {
        const r = await tidyIssuer(issuer, now);
        total.archived += r.archived;
        total.kept += r.kept;
        if (r.archived) touched.push(issuer);
      }
      if (touched.length) await refreshCrlsLocked(ca, { forceFor: touched });
    });
    total.retired = await retireDrainedLocked(ca, now);
    await audit(ca.store.auditLog, {
      event: 'tidy',
      result: 'ok',
      detail: `archived ${total.archived}, kept ${total.kept}${total.retired.length ? `, retired intermediate ${total.retired.join(', ')}` : ''}`,
    });
    return total;
  });
}
