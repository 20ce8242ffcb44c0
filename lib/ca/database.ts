// The openssl `ca` database (index.txt): read as data, and appended to from scratch databases.
// One line per signed certificate: status, notAfter, revocation date[,reason], serial (hex), file
// name, subject DN.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RivetError } from '../core/errors.ts';
import { stageFile, syncDir } from '../sys/files.ts';
import { serialOf, type Serial } from '../x509/serial.ts';
import { parseAsn1Time } from '../x509/time.ts';

export type DbStatus = 'V' | 'R' | 'E';
export type DbEntry = {
  status: DbStatus;
  notAfter: Date;
  revokedAt?: Date;
  reason?: string;
  serial: Serial; // upper-case hex as openssl writes it
  cn: string;
  line: string;
};

/** openssl ca writes UTCTime (YYMMDDHHMMSSZ) or, past 2049, GeneralizedTime. */
export function parseDbTime(text: string): Date {
  const d = parseAsn1Time(text);
  if (!d) throw new RivetError(`index.txt: bad time ${JSON.stringify(text)}`, 'db');
  return d;
}

export function parseDbLine(line: string): DbEntry {
  const f = line.split('\t');
  if (f.length !== 6 || !['V', 'R', 'E'].includes(f[0]!))
    throw new RivetError(`index.txt: malformed line ${JSON.stringify(line)}`, 'db');
  const [status, expiry, revocation, serial, , dn] = f as [DbStatus, string, string, string, string, string];
  const cn = /(?:^|\/)CN=([^/]*)/.exec(dn)?.[1] ?? '';
  const entry: DbEntry = { status, notAfter: parseDbTime(expiry), serial: serialOf(serial), cn, line };
  if (revocation) {
    const [date, reason] = revocation.split(',');
    entry.revokedAt = parseDbTime(date!);
    if (reason) entry.reason = reason;
  }
  return entry;
}

export async function readDb(caDir: string): Promise<DbEntry[]> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(caDir, 'index.txt'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map(parseDbLine);
}

/** Valid (not revoked) and not past notAfter: what `E` would mean if openssl kept it current. */
export function isLive(e: DbEntry, now = new Date()): boolean {
  return e.status === 'V' && e.notAfter.getTime() > now.getTime();
}

export function statusOf(e: DbEntry, now = new Date()): 'valid' | 'revoked' | 'expired' {
  if (e.status === 'R') return 'revoked';
  return e.notAfter.getTime() > now.getTime() ? 'valid' : 'expired';
}

/** A certificate `openssl ca` signed in a private scratch database: its row and newcerts copy. */
export type ScratchRecord = { serial: string; row: string; newcert: string };

/**
 * Records certificates signed in a scratch database in the issuer's live one, with openssl ca's
 * own commit protocol, so store recovery understands a kill at any point: the new index is
 * written in full as index.txt.new first, then the newcerts copies, then the rename (the commit
 * point). Killed before the rename, recovery drops index.txt.new and every newcerts file the
 * index lacks. A serial already in the database is not recorded; those are returned. The caller
 * holds the CA lock.
 */
export async function recordScratchLocked(issuerDir: string, records: readonly ScratchRecord[]): Promise<Set<string>> {
  const index = path.join(issuerDir, 'index.txt');
  const dbText = await fsp.readFile(index, 'utf8');
  const known = new Set(dbText.split('\n').map((l) => l.split('\t')[3]?.toUpperCase()));
  const duplicates = new Set<string>();
  const keep = records.filter((r) => {
    if (known.has(r.serial)) {
      duplicates.add(r.serial);
      return false;
    }
    known.add(r.serial);
    return true;
  });
  if (keep.length === 0) return duplicates;
  const sep = dbText.length === 0 || dbText.endsWith('\n') ? '' : '\n';
  await fsp.rename(
    await stageFile(index, `${dbText}${sep}${keep.map((r) => `${r.row}\n`).join('')}`, 0o600),
    `${index}.new`,
  );
  await syncDir(issuerDir);
  const staged = await Promise.all(
    keep.map(async (r) => {
      const target = path.join(issuerDir, 'newcerts', `${r.serial}.pem`);
      return [await stageFile(target, r.newcert, 0o600), target] as const;
    }),
  );
  for (const [tmp, target] of staged) await fsp.rename(tmp, target);
  await syncDir(path.join(issuerDir, 'newcerts'));
  await fsp.rename(`${index}.new`, index);
  await syncDir(issuerDir); // the commit point: every row is recorded
  return duplicates;
}
