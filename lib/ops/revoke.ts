// Revocation (DESIGN §4.4): every unexpired certificate of a CN, on whichever intermediate issued
// it, then fresh CRLs and the bundle. Pushing the bundle to nodes is the caller's next step.
import { type Ca } from '../ca/handle.ts';
import { commonName, parseIdentity } from '../core/identity.ts';
import { readDb, isLive } from '../ca/database.ts';
import { revokeSerial, REVOCATION_REASONS, type RevocationReason } from '../sign/signer.ts';
import { refreshCrlsLocked } from '../sign/crl-sign.ts';
import { audit } from '../sys/audit.ts';
import { UsageError, show } from '../core/errors.ts';
import type { Issuer } from '../ca/store.ts';
import { withCrlPending, transaction } from '../sign/transaction.ts';

export function revocationReason(value: string | undefined): RevocationReason {
  const v = value ?? 'unspecified';
  if ((REVOCATION_REASONS as readonly string[]).includes(v)) return v as RevocationReason;
  throw new UsageError(`revocation reason ${show(v)} is not one of ${REVOCATION_REASONS.join(', ')}`);
}

export function serialArg(value: string): string {
  const hex = value.replace(/^0x/i, '').replace(/:/g, '').toUpperCase();
  if (!/^[0-9A-F]{1,40}$/.test(hex)) throw new UsageError(`serial ${show(value)} must be hexadecimal (as \`rivet-ca list\` prints it)`);
  return hex.replace(/^0+(?=.)/, '');
}

export type RevokeResult = { cn: string; revoked: Array<{ serial: string; issuer: number }> };

export async function revoke(ca: Ca, name: string, opts: { reason?: string; serial?: string } = {}): Promise<RevokeResult> {
  const cn = commonName(parseIdentity(name, ca.domain), ca.domain);
  const reason = revocationReason(opts.reason);
  const serial = opts.serial === undefined ? undefined : serialArg(opts.serial);
  return transaction(ca, `revoke ${cn}`, async () => {
    const targets: Array<{ issuer: Issuer; serial: string }> = [];
    for (const issuer of await ca.store.intermediates()) {
      for (const e of await readDb(issuer.dir)) {
        if (e.cn === cn && isLive(e) && (serial === undefined || e.serial.replace(/^0+(?=.)/, '') === serial)) targets.push({ issuer, serial: e.serial });
      }
    }
    if (targets.length === 0) {
      throw new UsageError(`no unexpired, unrevoked certificate with CN ${show(cn)}${serial ? ` and serial ${serial}` : ''} — see \`rivet-ca list\``, 'not_found');
    }
    const touched = [...new Map(targets.map((t) => [t.issuer.dir, t.issuer])).values()];
    await withCrlPending(ca, async () => {
      for (const t of targets) await revokeSerial(t.issuer, t.serial, reason);
      await refreshCrlsLocked(ca, { forceFor: touched });
    });
    await audit(ca.store.auditLog, { event: 'revoke', result: 'ok', cn, serials: targets.map((t) => t.serial), reason });
    return { cn, revoked: targets.map((t) => ({ serial: t.serial, issuer: t.issuer.generation })) };
  });
}
