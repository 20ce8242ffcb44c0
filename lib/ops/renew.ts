// CA-side renewal (DESIGN §4.3): certificates whose key is in issued/ are re-signed with the same
// key once they are within the renewal window; a node's agents piggyback on the node. Safe to run
// daily from cron: what is not due is left alone, and each failure is reported without stopping
// the rest.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import { fileStem, identityFromCommonName, parseIdentity, type Identity } from '../core/identity.ts';
import { parseCertPem, type CertInfo } from '../x509/cert.ts';
import { nodeBaseNames } from '../sign/profile.ts';
import { parseSan, type San } from '../core/san.ts';
import { type NameOverride } from './issue.ts';
import { reissueWithSameKey } from './operator-issue.ts';
import { leafValidity } from '../sign/validity.ts';
import { readDb } from '../ca/database.ts';
import { exists, readText } from '../sys/files.ts';
import { DAY_MS } from '../core/duration.ts';
import { refreshCrlsLocked } from '../sign/crl-sign.ts';
import { transaction } from '../sign/transaction.ts';

export const RENEW_WITHIN_MS = 30 * DAY_MS;

export type RenewOutcome = {
  cn: string;
  action: 'renewed' | 'not-due' | 'skipped' | 'failed';
  serial?: string;
  notAfter?: Date;
  why?: string;
};

/** The extra SANs a node cert carries beyond its standard names, kept across renewals. */
export function extraSans(info: CertInfo, id: Identity, ca: Ca): San[] {
  if (id.kind !== 'node') return [];
  const base = new Set(nodeBaseNames(id.nodeId, ca.domain));
  return [
    ...info.dns.filter((d) => !base.has(d)).map((d) => parseSan(`DNS:${d}`)),
    ...info.ips.map((ip) => parseSan(`IP:${ip}`)),
  ];
}

type Candidate = { id: Identity; info: CertInfo };

async function issuedCandidates(ca: Ca, unreadable: RenewOutcome[]): Promise<Candidate[]> {
  const names = (await fsp.readdir(ca.store.issuedDir).catch(() => [] as string[])).filter(
    (n) => n.endsWith('.crt') && !n.startsWith('.'),
  );
  const out: Candidate[] = [];
  for (const name of names.sort()) {
    const pem = await readText(path.join(ca.store.issuedDir, name));
    if (!pem) continue;
    try {
      const info = parseCertPem(pem);
      out.push({ id: identityFromCommonName(info.subjectCNs[0] ?? '', ca.domain), info });
    } catch (err) {
      unreadable.push({ cn: name, action: 'failed', why: `cannot read ${name}: ${(err as Error).message}` });
    }
  }
  return out;
}

async function dbStatus(ca: Ca, serial: string): Promise<'V' | 'R' | 'E' | undefined> {
  for (const issuer of await ca.store.intermediates()) {
    const row = (await readDb(issuer.dir)).find((e) => e.serial === serial);
    if (row) return row.status;
  }
  return undefined;
}

async function renewOne(ca: Ca, c: Candidate, days: number | undefined, override: NameOverride): Promise<RenewOutcome> {
  const cn = c.info.subjectCNs[0]!;
  const stem = fileStem(c.id);
  if (!(await exists(ca.store.issued(stem, 'key'))))
    return { cn, action: 'skipped', why: 'key is not on the CA host; its holder renews it' };
  const status = await dbStatus(ca, c.info.serial);
  if (status === undefined)
    return { cn, action: 'skipped', why: `serial ${c.info.serial} is in no database of this CA — not ours to renew` };
  if (status === 'R')
    return {
      cn,
      action: 'skipped',
      why: `serial ${c.info.serial} is revoked — issue a new certificate deliberately if this identity should return`,
    };
  if (c.info.notAfter.getTime() <= Date.now())
    return { cn, action: 'skipped', why: `expired on ${c.info.notAfter.toISOString()} — issue anew` };
  try {
    const r = await reissueWithSameKey(
      ca,
      c.id,
      extraSans(c.info, c.id, ca),
      leafValidity({ days }),
      'renew',
      override,
    );
    return {
      cn,
      action: 'renewed',
      serial: r.serial,
      notAfter: r.info.notAfter,
      ...(r.superseded.length ? { why: `superseded ${r.superseded.join(', ')}` } : {}),
    };
  } catch (err) {
    return { cn, action: 'failed', why: (err as Error).message };
  }
}

export type RenewOptions = NameOverride & { names?: readonly string[]; withinMs?: number; days?: number };

/**
 * Renews the named identities (now), or with no names every due certificate in issued/. Agents of
 * a renewed node are re-issued in the same run.
 */
export async function renewIssued(ca: Ca, opts: RenewOptions = {}): Promise<RenewOutcome[]> {
  const within = opts.withinMs ?? RENEW_WITHIN_MS;
  const wanted = opts.names?.length ? new Set(opts.names.map((n) => fileStem(parseIdentity(n, ca.domain)))) : undefined;
  return transaction(ca, 'renew', async () => {
    const results: RenewOutcome[] = [];
    const all = await issuedCandidates(ca, results);
    const renewedNodes = new Set<string>();
    const done = new Set<string>();
    const isDue = (c: Candidate) => c.info.notAfter.getTime() - Date.now() < within;
    // Nodes first, so their agents can piggyback in the same pass.
    const ordered = [...all.filter((c) => c.id.kind === 'node'), ...all.filter((c) => c.id.kind !== 'node')];
    for (const c of ordered) {
      const stem = fileStem(c.id);
      const piggyback = c.id.kind === 'agent' && renewedNodes.has(c.id.nodeId);
      const selected = wanted ? wanted.has(stem) : isDue(c);
      if (!selected && !piggyback) {
        if (!wanted) results.push({ cn: c.info.subjectCNs[0]!, action: 'not-due', notAfter: c.info.notAfter });
        continue;
      }
      if (done.has(stem)) continue;
      done.add(stem);
      const r = await renewOne(ca, c, opts.days, opts);
      if (piggyback && r.action === 'renewed') r.why = `with node ${c.id.kind === 'agent' ? c.id.nodeId : ''}`;
      results.push(r);
      if (r.action === 'renewed' && c.id.kind === 'node') renewedNodes.add(c.id.nodeId);
    }
    if (wanted) {
      const found = new Set(all.map((c) => fileStem(c.id)));
      for (const w of wanted)
        if (!found.has(w))
          results.push({ cn: w, action: 'failed', why: `no certificate for ${w} in ${ca.store.issuedDir}` });
    }
    await refreshCrlsLocked(ca);
    return results;
  });
}
