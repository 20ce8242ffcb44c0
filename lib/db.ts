// The openssl `ca` database (index.txt), read as data. One line per signed certificate:
// status, notAfter, revocation date[,reason], serial (hex), file name, subject DN.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RivetError } from './errors.ts';

export type DbStatus = 'V' | 'R' | 'E';
export type DbEntry = {
  status: DbStatus;
  notAfter: Date;
  revokedAt?: Date;
  reason?: string;
  serial: string; // upper-case hex as openssl writes it
  cn: string;
  line: string;
};

/** openssl ca writes UTCTime (YYMMDDHHMMSSZ) or, past 2049, GeneralizedTime. */
export function parseDbTime(text: string): Date {
  const m = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) throw new RivetError(`index.txt: bad time ${JSON.stringify(text)}`, 'db');
  const y = m[1]!.length === 2 ? (Number(m[1]) >= 50 ? 1900 : 2000) + Number(m[1]) : Number(m[1]);
  return new Date(Date.UTC(y, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

export function formatDbTime(d: Date): string {
  const iso = d.toISOString(); // 2026-11-27T05:53:02.000Z
  return `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

export function parseDbLine(line: string): DbEntry {
  const f = line.split('\t');
  if (f.length !== 6 || !['V', 'R', 'E'].includes(f[0]!)) throw new RivetError(`index.txt: malformed line ${JSON.stringify(line)}`, 'db');
  const [status, expiry, revocation, serial, , dn] = f as [DbStatus, string, string, string, string, string];
  const cn = /(?:^|\/)CN=([^/]*)/.exec(dn)?.[1] ?? '';
  const entry: DbEntry = { status, notAfter: parseDbTime(expiry), serial: serial.toUpperCase(), cn, line };
  if (revocation) {
    const [date, reason] = revocation.split(',');
    entry.revokedAt = parseDbTime(date!);
    if (reason) entry.reason = reason;
  }
  return entry;
}

export async function readDb(caDir: string): Promise<DbEntry[]> {
  let text: string;
  try { text = await fsp.readFile(path.join(caDir, 'index.txt'), 'utf8'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return text.split('\n').filter((l) => l.length > 0).map(parseDbLine);
}

/** Valid (not revoked) and not past notAfter: what `E` would mean if openssl kept it current. */
export function isLive(e: DbEntry, now = new Date()): boolean {
  return e.status === 'V' && e.notAfter.getTime() > now.getTime();
}

export function statusOf(e: DbEntry, now = new Date()): 'valid' | 'revoked' | 'expired' {
  if (e.status === 'R') return 'revoked';
  return e.notAfter.getTime() > now.getTime() ? 'valid' : 'expired';
}
