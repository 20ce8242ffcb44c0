// Deciding what a CRL delivery (push, pull or direct install) changes on a node: which chain and
// which CRLs it ends up with, or why nothing. Pure: install.ts reads the files, calls planDelivery
// and writes the result. What a CRL proves is its signature and its number, never who sent it:
//
// - every CRL must be signed by a CA the node trusts or is offered (a served chain only adds CA
//   certificates the installed root signed — acceptServedChain), one per CA, with a crlNumber
//   not below the CA's persisted high-water mark, not expired, and not dated in the future (OpenSSL
//   has no leeway on thisUpdate: installing it would fail every handshake with CRL_NOT_YET_VALID);
// - a CA the node keeps must keep a current CRL: the chain's CAs need one in the bundle;
// - a CA a served chain leaves out is dropped only once none of its certificates can be valid here:
//   its own certificate has expired (its leaves cannot outlive it and no verifier accepts a chain
//   through it), or the root's CRL revokes it, or the CRL this node holds for it has lapsed (from
//   then on every chain through it fails the CRL check here anyway, so dropping it changes nothing).
//   Otherwise it stays, with its installed CRL.
//
// Why not "superseded longer ago than the longest leaf lifetime"? `rivet-ca issue-* --days` allows
// 825 days, but `--not-before` may start a leaf at any later date up to the intermediate's own end,
// so the only bound on a leaf of a superseded CA is the CA's notAfter — rule one above. And the
// lapsed-CRL rule frees a CA that `tidy` retired within a week (its last CRL's lifetime) anyway.
import type { X509Certificate } from 'node:crypto';
import { show } from '../core/errors.ts';
import { crlSignedBy, type CrlInfo } from '../x509/crl.ts';
import { subjectCn } from '../x509/cert.ts';
import { caKeyId, type CrlMark, type KeptCa } from './crl-state.ts';
import { CrlRefused } from './refused.ts';

export type Paired = { ca: X509Certificate; crl: CrlInfo };
export type Dropped = { ca: string; why: string };
export type Plan = { chain: X509Certificate[]; crls: Paired[]; kept: KeptCa[]; dropped: Dropped[] };

export type PlanInput = {
  /** CA certificates of rivet-ca.crt, root included. */
  installedChain: X509Certificate[];
  /** The CA certificates a delivery offered (already checked by acceptServedChain), if any. */
  served?: X509Certificate[];
  bundle: CrlInfo[];
  installedCrls: CrlInfo[];
  marks: ReadonlyMap<string, CrlMark>;
  now: Date;
};

export const nameOf = (c: X509Certificate) => subjectCn(c) ?? c.subject.replace(/\n/g, ', ');
const sameCa = (a: X509Certificate, b: X509Certificate) => a === b || caKeyId(a) === caKeyId(b);
const current = (crl: CrlInfo, now: Date) => !crl.nextUpdate || crl.nextUpdate.getTime() > now.getTime();

/** Pairs each bundle CRL with the CA that signed it; throws the first refusal. */
export function pairBundle(
  bundle: CrlInfo[],
  cas: X509Certificate[],
  marks: ReadonlyMap<string, CrlMark>,
  now: Date,
): Paired[] {
  if (bundle.length === 0)
    throw new CrlRefused('CRL bundle refused: no "-----BEGIN X509 CRL-----" block in the body', 'bad_crl');
  const pairs: Paired[] = [];
  for (const crl of bundle) {
    const ca = cas.find((c) => crlSignedBy(crl, c));
    if (!ca)
      throw new CrlRefused(
        `CRL bundle refused: a CRL issued by ${show(crl.issuerCNs.join(', '))} is not signed by any CA of the installed chain — wrong CA, or the node's rivet-ca.crt is out of date`,
        'foreign_crl',
      );
    const name = show(nameOf(ca));
    if (pairs.some((p) => sameCa(p.ca, ca)))
      throw new CrlRefused(`CRL bundle refused: two CRLs from ${name} — send exactly one per CA`, 'bad_crl');
    if (crl.crlNumber === undefined)
      throw new CrlRefused(
        `CRL bundle refused: the CRL of ${name} has no crlNumber, so rollback cannot be ruled out`,
        'bad_crl',
      );
    if (!current(crl, now))
      throw new CrlRefused(
        `CRL bundle refused: the CRL of ${name} expired at ${crl.nextUpdate!.toISOString()} — the CA must re-sign it (\`rivet-ca crl\`)`,
        'expired_crl',
      );
    if (crl.thisUpdate.getTime() > now.getTime()) {
      throw new CrlRefused(
        `CRL bundle refused: the CRL of ${name} starts at ${crl.thisUpdate.toISOString()}, ${Math.ceil((crl.thisUpdate.getTime() - now.getTime()) / 1000)} s after this node's clock (${now.toISOString()}) — every handshake would fail with CRL_NOT_YET_VALID; the installed CRLs stay, try again then, and check the CA host's clock`,
        'crl_not_yet_valid',
        crl.thisUpdate,
      );
    }
    const mark = marks.get(caKeyId(ca));
    if (mark && crl.crlNumber < mark.crlNumber) {
      throw new CrlRefused(
        `CRL bundle refused: ${name} crlNumber ${crl.crlNumber} is older than the installed ${mark.crlNumber} — rollback is not allowed`,
        'crl_rollback',
      );
    }
    pairs.push({ ca, crl });
  }
  return pairs;
}

/** Why no certificate of `ca` can verify here any more, or undefined. `held` only for CAs left out. */
function deadBecause(
  ca: X509Certificate,
  rootCrl: CrlInfo | undefined,
  now: Date,
  held?: CrlInfo | null,
): string | undefined {
  if (new Date(ca.validTo).getTime() <= now.getTime())
    return `its certificate expired at ${new Date(ca.validTo).toISOString()}`;
  if (rootCrl?.revoked.some((r) => r.serial === ca.serialNumber.toUpperCase())) return "the root's CRL revokes it";
  if (held === null)
    return 'the CRL this node holds for it has lapsed, so none of its certificates verifies here anyway';
  return undefined;
}

export function planDelivery(p: PlanInput): Plan {
  // install.ts only calls this with a chain that holds a self-issued root (chainCerts).
  const root = p.installedChain.find((c) => c.checkIssued(c))!;
  const offered = p.served ?? p.installedChain;
  const omitted = p.installedChain.filter((c) => !offered.some((o) => sameCa(o, c)));
  const pairs = pairBundle(p.bundle, [...offered, ...omitted], p.marks, p.now);
  const fromBundle = (ca: X509Certificate) => pairs.find((x) => sameCa(x.ca, ca));
  const held = (ca: X509Certificate) => p.installedCrls.find((c) => crlSignedBy(c, ca) && current(c, p.now));
  const rootCrl = fromBundle(root)?.crl ?? held(root);

  const plan: Plan = { chain: [], crls: [], kept: [], dropped: [] };
  const missing: X509Certificate[] = [];
  const take = (ca: X509Certificate, crl: CrlInfo) => {
    plan.chain.push(ca);
    plan.crls.push({ ca, crl });
  };
  for (const ca of offered.filter((c) => !sameCa(c, root))) {
    const mine = fromBundle(ca);
    const dead = mine ? undefined : deadBecause(ca, rootCrl, p.now);
    if (mine) take(ca, mine.crl);
    else if (dead) plan.dropped.push({ ca: nameOf(ca), why: dead });
    else missing.push(ca);
  }
  for (const ca of omitted) {
    const crl = fromBundle(ca)?.crl ?? held(ca);
    const dead = deadBecause(ca, rootCrl, p.now, crl ?? null);
    if (dead) {
      plan.dropped.push({ ca: nameOf(ca), why: dead });
      continue;
    }
    // Left out by the served chain, but its certificates can still be valid: keep it and a CRL.
    take(ca, crl!);
    plan.kept.push({
      ca: nameOf(ca),
      why: `the served chain leaves out ${show(nameOf(ca))}, but its certificates can still be valid here (its certificate runs until ${new Date(ca.validTo).toISOString()}, the root's CRL does not revoke it, its CRL here is current until ${crl!.nextUpdate?.toISOString() ?? '-'}) — kept it and its CRL`,
    });
  }
  const rootPair = fromBundle(root);
  if (rootPair) take(root, rootPair.crl);
  else missing.push(root);
  if (missing.length)
    throw new CrlRefused(
      `CRL bundle refused: no CRL for ${missing.map((c) => show(nameOf(c))).join(', ')} — TLS needs one CRL per CA of the chain`,
      'incomplete_crl',
    );
  // The root goes last in both files, as the CA publishes them (DESIGN §5).
  return plan;
}
