// Inventory (DESIGN §4.5): every certificate in the databases, with its status and days left.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import { readDb, statusOf, type DbEntry } from '../ca/database.ts';
import { parseCertPem } from '../x509/cert.ts';
import { identityFromCommonName } from '../core/identity.ts';
import { daysLeft } from '../core/duration.ts';
import type { Issuer } from '../ca/store.ts';

export type InventoryRow = {
  cn: string;
  kind: 'node' | 'agent' | 'user' | 'intermediate' | 'unknown';
  serial: string;
  status: 'valid' | 'revoked' | 'expired';
  notBefore: string;
  notAfter: string;
  daysLeft: number;
  issuer: string;
  revokedAt?: string;
  reason?: string;
};

async function notBeforeOf(issuer: Issuer, e: DbEntry): Promise<string> {
  try {
    const pem = await fsp.readFile(path.join(issuer.dir, 'newcerts', `${e.serial}.pem`), 'utf8');
    return parseCertPem(pem).notBefore.toISOString();
  } catch {
    return '';
  }
}

function kindOf(ca: Ca, issuer: Issuer, cn: string): InventoryRow['kind'] {
  if (issuer.kind === 'root') return 'intermediate';
  try {
    return identityFromCommonName(cn, ca.domain).kind;
  } catch {
    return 'unknown';
  }
}

export async function inventory(ca: Ca, now = new Date()): Promise<InventoryRow[]> {
  const rows: InventoryRow[] = [];
  const issuers: Issuer[] = [ca.store.root(), ...(await ca.store.intermediates().catch(() => [] as Issuer[]))];
  for (const issuer of issuers) {
    const issuerName = issuer.kind === 'root' ? 'Rivet Root CA' : `Rivet Intermediate CA ${issuer.generation}`;
    for (const e of await readDb(issuer.dir)) {
      rows.push({
        cn: e.cn,
        kind: kindOf(ca, issuer, e.cn),
        serial: e.serial,
        status: statusOf(e, now),
        notBefore: await notBeforeOf(issuer, e),
        notAfter: e.notAfter.toISOString(),
        daysLeft: daysLeft(e.notAfter, now),
        issuer: issuerName,
        ...(e.revokedAt ? { revokedAt: e.revokedAt.toISOString() } : {}),
        ...(e.reason ? { reason: e.reason } : {}),
      });
    }
  }
  return rows;
}
