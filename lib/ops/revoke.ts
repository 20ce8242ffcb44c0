// Revocation (DESIGN §4.4): every unexpired certificate of a CN (and a node's agents), on whichever
// intermediate issued it, then fresh CRLs and the bundle. Pushing the bundle to nodes is the caller's next step.
import { type Ca } from '../ca/handle.ts';
import { commonName, parseIdentity } from '../core/identity.ts';
import { readDb, isLive } from '../ca/database.ts';
import { REVOCATION_REASONS, type RevocationReason } from '../sign/signer.ts';
import { revokeLocked, type RevokeTarget } from '../sign/revocation.ts';
import { auditAll } from '../sys/audit.ts';
import { UsageError, show } from '../core/errors.ts';
import { transaction } from '../sign/transaction.ts';

export function revocationReason(value: string | undefined): RevocationReason {
  const v = value ?? 'unspecified';
  if ((REVOCATION_REASONS as readonly string[]).includes(v)) return v as RevocationReason;
  throw new UsageError(`revocation reason ${show(v)} is not one of ${REVOCATION_REASONS.join(', ')}`);
}

export function serialArg(value: string): string {
  const hex = value.replace(/^0x/i, '').replace(/:/g, '').toUpperCase();
  if (!/^[0-9A-F]{1,40}$/.test(hex))
    throw new UsageError(`serial ${show(value)} must be hexadecimal (as \`rivet-ca list\` prints it)`);
  return hex.replace(/^0+(?=.)/, '');
}

export type Revoked = { cn: string; revoked: Array<{ serial: string; issuer: number }> };
/** The identity asked for, and for a node, each of its agents revoked with it. */
export type RevokeResult = Revoked & { agents: Revoked[] };

export type RevokeOptions = { reason?: string; serial?: string; nodeOnly?: boolean };

/**
 * Revokes every live certificate of `name` (or the one `serial`). Revoking a node revokes its
 * agents too, with the same reason: their keys live on that node (issue 14: an agent of a node
 * revoked for keyCompromise kept renewing). `nodeOnly` keeps them, e.g. when a replaced host's
 * agents moved with it. All serials are revoked in one database write and one CRL per issuer.
 */
export async function revoke(ca: Ca, name: string, opts: RevokeOptions = {}): Promise<RevokeResult> {
  const id = parseIdentity(name, ca.domain);
  const cn = commonName(id, ca.domain);
  const reason = revocationReason(opts.reason);
  const serial = opts.serial === undefined ? undefined : serialArg(opts.serial);
  if (opts.nodeOnly && id.kind !== 'node')
    throw new UsageError(`--node-only is for revoking a node; ${show(cn)} is a ${id.kind}`);
  const withAgents = id.kind === 'node' && !opts.nodeOnly && serial === undefined;
  return transaction(ca, `revoke ${cn}`, async () => {
    const targets: Array<RevokeTarget & { cn: string }> = [];
    const agentOf = id.kind === 'node' ? `@${id.nodeId}` : undefined;
    for (const issuer of await ca.store.intermediates()) {
      for (const e of await readDb(issuer.dir)) {
        if (!isLive(e)) continue;
        const mine = e.cn === cn && (serial === undefined || e.serial.replace(/^0+(?=.)/, '') === serial);
        if (mine || (withAgents && agentOf && e.cn.endsWith(agentOf)))
          targets.push({ issuer, serial: e.serial, cn: e.cn });
      }
    }
    if (!targets.some((t) => t.cn === cn)) {
      throw new UsageError(
        `no unexpired, unrevoked certificate with CN ${show(cn)}${serial ? ` and serial ${serial}` : ''} — see \`rivet-ca list\``,
        'not_found',
      );
    }
    await revokeLocked(ca, targets, reason);
    const group = (which: string): Revoked => ({
      cn: which,
      revoked: targets.filter((t) => t.cn === which).map((t) => ({ serial: t.serial, issuer: t.issuer.generation })),
    });
    const agents = [...new Set(targets.map((t) => t.cn).filter((c) => c !== cn))].sort().map(group);
    const own = group(cn);
    await auditAll(ca.store.auditLog, [
      {
        event: 'revoke',
        result: 'ok',
        cn,
        serials: own.revoked.map((r) => r.serial),
        reason,
        ...(agents.length ? { detail: `and its ${agents.length} agent(s)` } : {}),
      },
      ...agents.map((a) => ({
        event: 'revoke',
        result: 'ok' as const,
        cn: a.cn,
        serials: a.revoked.map((r) => r.serial),
        reason,
        detail: `with its node ${cn}`,
      })),
    ]);
    return { ...own, agents };
  });
}
