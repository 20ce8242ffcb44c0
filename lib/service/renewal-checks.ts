// The locked half of /renew and /agents (lib/policy/renewal.ts says why): an agent whose node has
// no live certificate gets nothing, a node mints a bounded number of agents, a request for what
// was already given gets it again, and a new certificate supersedes all but the one in use.
import type { IncomingMessage } from 'node:http';
import { issuerCert } from '../ca/handle.ts';
import { isLive } from '../ca/database.ts';
import { commonName, type Identity } from '../core/identity.ts';
import { issuerOfDir } from '../sign/revocation.ts';
import type { Issued } from '../ops/issue.ts';
import {
  MAX_AGENTS_PER_NODE,
  newest,
  planRenewal,
  renewalOpensAt,
  inRenewalWindow,
  type Held,
} from '../policy/renewal.ts';
import { RequestLimiter, sourceKey, type RateLimit } from '../policy/rate-limit.ts';
import type { CertInfo } from '../x509/cert.ts';
import type { CheckResult, GroupReads } from './signing-queue.ts';
import { UsageError } from '../core/errors.ts';

export type RateLimits = { perIdentity: RateLimit; perSource: RateLimit };
/** A node renewing with its agents asks 1 + agents times in a few seconds; twice that is slack. */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  perIdentity: { max: 2 * (1 + MAX_AGENTS_PER_NODE), windowMs: 10 * 60_000 },
  perSource: { max: 600, windowMs: 10 * 60_000 },
};

/** Per identity and per source address, for the authenticated issuing routes. */
export class IssuanceThrottle {
  private readonly identity: RequestLimiter;
  private readonly source: RequestLimiter;
  constructor(readonly limits: RateLimits = DEFAULT_RATE_LIMITS) {
    this.identity = new RequestLimiter(limits.perIdentity);
    this.source = new RequestLimiter(limits.perSource);
  }

  /** Counts the request (before any await) or throws 429 with Retry-After. */
  take(cn: string, req: IncomingMessage, route: string): void {
    const address = req.socket.remoteAddress ?? 'unknown';
    const key = sourceKey(address);
    const bySource = this.source.wait(key);
    const byIdentity = bySource ? 0 : this.identity.wait(cn);
    const wait = bySource || byIdentity;
    if (!wait) {
      this.source.record(key);
      this.identity.record(cn);
      return;
    }
    const what = bySource
      ? `from ${address} (${this.limits.perSource.max} per ${this.limits.perSource.windowMs / 60_000} min)`
      : `for ${cn} (${this.limits.perIdentity.max} per ${this.limits.perIdentity.windowMs / 60_000} min)`;
    throw new UsageError(`too many ${route} requests ${what} — retry in ${Math.ceil(wait / 1000)} s`, 'rate_limited', {
      retryAfterS: Math.ceil(wait / 1000),
    });
  }

  sweep(): void {
    this.identity.sweep();
    this.source.sweep();
  }
}

/** 409 `not_due` unless the presented certificate is in its renewal window. */
export function refuseNotDue(info: CertInfo, now = new Date()): void {
  if (inRenewalWindow(info, now)) return;
  const opens = renewalOpensAt(info);
  throw new UsageError(
    `certificate serial ${info.serial} (until ${info.notAfter.toISOString()}) is not due: renewal opens ${opens.toISOString()}, the last third of its life — keep using it`,
    'not_due',
  );
}

/** The live certificates of `cn`, each with its key and validity. */
async function liveHeld(reads: GroupReads, cn: string): Promise<Held[]> {
  const now = new Date();
  const rows = (await reads.rows()).filter((e) => e.row.cn === cn && isLive(e.row, now));
  return Promise.all(
    rows.map(async (e) => {
      const info = await reads.cert(e.dir, e.row.serial);
      return {
        ...e,
        key: info ? await reads.certKey(e.dir, e.row.serial) : undefined,
        validity: info && { notBefore: info.notBefore, notAfter: info.notAfter },
        names: info && { dns: info.dns, ips: info.ips },
      };
    }),
  );
}

/** A held certificate as a reply: the leaf from newcerts/ with its issuer appended. */
async function asIssued(reads: GroupReads, h: Held): Promise<Issued> {
  const info = (await reads.cert(h.dir, h.row.serial))!;
  const issuer = (await issuerOfDir(reads.ca, h.dir))!;
  return {
    cn: h.row.cn,
    serial: info.serial,
    certPem: `${info.x509.toString()}${(await issuerCert(issuer)).toString()}`,
    info,
    issuer,
  };
}

/** 403 `node_not_live` when an agent's node holds no live certificate (revoked or expired). */
export async function refuseDeadNode(reads: GroupReads, id: Identity): Promise<Held[]> {
  if (id.kind !== 'agent') return [];
  const nodeCn = commonName({ kind: 'node', nodeId: id.nodeId }, reads.ca.domain);
  const node = await liveHeld(reads, nodeCn);
  if (node.length === 0)
    throw new UsageError(
      `node ${id.nodeId} holds no live certificate (revoked or expired) — its agents cannot renew; re-enroll the node first`,
      'node_not_live',
    );
  return node;
}

/** /renew: the presented certificate stays; reuse a newer one with this key and names, or supersede the rest. */
export async function planRenewLocked(
  reads: GroupReads,
  cn: string,
  presented: CertInfo,
  key: Buffer,
  want: { dns: readonly string[]; ips: readonly string[] },
): Promise<CheckResult> {
  const plan = planRenewal(await liveHeld(reads, cn), key, presented.serial, presented.notBefore, want);
  if (plan.reuse) return { reuse: await asIssued(reads, plan.reuse) };
  return { supersede: plan.supersede.map((h) => ({ dir: h.dir, serial: h.row.serial })) };
}

/**
 * /agents: at most MAX_AGENTS_PER_NODE live agents per node (409 `agent_limit`); the newest
 * certificate of the agent stays; one with this key that is not due and newer than the node's
 * newest certificate is given again (so agents still follow a renewed node).
 */
export async function planAgentLocked(
  reads: GroupReads,
  id: Identity & { kind: 'agent' },
  key: Buffer,
): Promise<CheckResult> {
  const cn = commonName(id, reads.ca.domain);
  const node = await refuseDeadNode(reads, id);
  const held = await liveHeld(reads, cn);
  if (held.length === 0) {
    const now = new Date();
    const agents = new Set(
      (await reads.rows()).filter((e) => e.row.cn.endsWith(`@${id.nodeId}`) && isLive(e.row, now)).map((e) => e.row.cn),
    );
    if (agents.size >= MAX_AGENTS_PER_NODE)
      throw new UsageError(
        `node ${id.nodeId} already holds ${agents.size} live agent certificates, the most one node may mint — revoke one it no longer runs (\`rivet-ca revoke <agent>@${id.nodeId}\`)`,
        'agent_limit',
      );
  }
  const nodeSince = newest(node)?.validity?.notBefore;
  const plan = planRenewal(held, key, newest(held)?.row.serial, nodeSince);
  if (plan.reuse) return { reuse: await asIssued(reads, plan.reuse) };
  return { supersede: plan.supersede.map((h) => ({ dir: h.dir, serial: h.row.serial })) };
}
