// The three issuing endpoints of the enrollment service (DESIGN §4.7). Each validates everything
// it can before it queues, then re-checks what may have changed (tokens, revocations, existing
// certs) in the lock hold that signs its certificate (signing-queue.ts), so a refusal changes nothing.
// Length (over 250 lines once formatted): the three issuing routes share their checks and the
// order of them (validate, queue, re-check under the lock); reading them together is the review.
import type { IncomingMessage } from 'node:http';
import type { KeyObject } from 'node:crypto';
import type { Ca } from '../ca/handle.ts';
import type { Cidr } from '../core/san.ts';
import { checkNodeSanPolicy, type San } from '../core/san.ts';
import { commonName, type Identity } from '../core/identity.ts';
import { csrPublicKey } from '../sign/csr.ts';
import { publicKeyDer } from '../x509/cert.ts';
import { type Issued } from '../ops/issue.ts';
import { leafProfile } from '../sign/profile.ts';
import type { CheckResult, GroupReads, SigningQueue } from './signing-queue.ts';
import {
  planAgentLocked,
  planRenewLocked,
  refuseDeadNode,
  refuseNotDue,
  type IssuanceThrottle,
} from './renewal-checks.ts';
import { isLive, type DbEntry } from '../ca/database.ts';
import { extraSans } from '../ops/renew.ts';
import { bearer, verifiedPeer, type Peer } from './auth.ts';
import { secretMatches } from '../core/secret.ts';
import { MAX_LIVE_NODES } from '../core/limits.ts';
import { checkToken, consumeTokenLocked, looksLikeToken } from '../ops/tokens.ts';
import { csrRequest, identityOfCn, parseSans } from './request.ts';
import { RivetError } from '../core/errors.ts';

export type RouteContext = {
  ca: Ca;
  sanCidrs: readonly Cidr[];
  secret?: string;
  /** Filled in as soon as the request names an identity, so refusals are audited with it. */
  decision: { cn?: string; source: string };
  /** Where every signing request of this service waits for its group (signing-queue.ts). */
  queue: SigningQueue;
  /** Rate limits of /renew and /agents; none when absent (library callers that set their own). */
  throttle?: IssuanceThrottle;
};

export type Reply = { cn: string; serial: string; notAfter: string; cert: string; chain: string; crl: string };

/** `used`: a spent token, good only to resume the enrollment it paid for (see `enroll`). */
type Credential = { kind: 'secret' } | { kind: 'token'; token: string; node: string; id: string; used?: boolean };

/** What the bearer presents, decided without I/O (so the failure limiter counts it at once). */
export type Presented = { kind: 'secret' } | { kind: 'token'; given: string };

/** Checks the bearer before the body is read: a wrong secret costs the caller, not the CA. */
export function presentedCredential(ctx: RouteContext, req: IncomingMessage): Presented {
  const given = bearer(req);
  if (given === undefined)
    throw new RivetError('send "Authorization: Bearer <bootstrap secret or enrollment token>"', 'auth_required');
  if (secretMatches(given, ctx.secret)) return { kind: 'secret' };
  if (looksLikeToken(given)) return { kind: 'token', given };
  throw new RivetError('the bootstrap secret or enrollment token is wrong', 'bad_secret');
}

/** A presented token, checked against the token store. */
export async function enrollCredential(ctx: RouteContext, presented: Presented): Promise<Credential> {
  if (presented.kind === 'secret') return { kind: 'secret' };
  const { given } = presented;
  const verdict = await checkToken(ctx.ca, given);
  if (!verdict.ok && verdict.why === 'used' && verdict.node)
    return { kind: 'token', token: given, node: verdict.node, id: verdict.id, used: true };
  if (!verdict.ok)
    throw new RivetError(
      `enrollment token ${verdict.id} is ${verdict.why} — ask the operator for a new one (\`rivet-ca token <node-id>\`)`,
      'bad_token',
    );
  return { kind: 'token', token: given, node: verdict.node, id: verdict.id };
}

export async function enroll(ctx: RouteContext, cred: Credential, body: Record<string, unknown>): Promise<Reply> {
  const { ca } = ctx;
  const request = csrRequest(body);
  ctx.decision.cn = request.cn;
  const id = identityOfCn(request.cn, ca.domain);
  if (id.kind !== 'node')
    throw new RivetError(
      `CSR CN ${JSON.stringify(request.cn)} is a ${id.kind} identity — /enroll issues node certs, CN <node-id>.${ca.domain}`,
      'bad_identity',
    );
  if (cred.kind === 'token' && cred.node !== id.nodeId) {
    throw new RivetError(`enrollment token ${cred.id} is for node ${cred.node}, not ${id.nodeId}`, 'token_node');
  }
  const sans = parseSans(request.sansText);
  for (const san of sans) checkNodeSanPolicy(san, id.nodeId, ca.domain, ctx.sanCidrs);
  const publicKey = await csrPublicKey(request.csr);
  const cn = commonName(id, ca.domain);
  let resumed: { row: DbEntry } | undefined;
  return ctx.queue.sign({
    id,
    csrPem: request.csr,
    publicKey,
    sans,
    claims: [...claimsOf(ctx, id, sans), ...(cred.kind === 'token' ? [`token:${cred.id}`] : [])],
    checkLocked: async (reads) => {
      await refuseRevokedKey(reads, cn, publicKey);
      const holding = await rowsWithKey(reads, cn, isLive);
      // A node killed after we signed but before it stored the reply retries with the same key. The
      // CSR proves it holds that key, so it is the party that enrolled, not a takeover: sign again.
      resumed = holding.find((h) => h.key?.equals(publicKeyDer(publicKey)));
      if (cred.kind === 'token' && cred.used && !resumed)
        throw new RivetError(
          `enrollment token ${cred.id} is used — ask the operator for a new one (\`rivet-ca token <node-id>\`)`,
          'bad_token',
        );
      if (holding.length && !resumed)
        throw new RivetError(
          `${cn} already holds a valid certificate (serial ${holding[0]!.row.serial}) — renew it over mTLS, or have the operator revoke it first`,
          'already_enrolled',
        );
      if (!holding.length && (await reads.names()).nodeCount >= MAX_LIVE_NODES)
        throw new RivetError(
          `this CA already holds ${MAX_LIVE_NODES} live nodes, the most one issuing CA serves (the CRL bound, lib/core/limits.ts) — enroll at another site's intermediate`,
          'ca_full',
        );
      if (cred.kind === 'token' && !cred.used) {
        const again = await checkToken(ca, cred.token);
        if (!again.ok) throw new RivetError(`enrollment token ${again.id} is ${again.why}`, 'bad_token');
      }
    },
    finishLocked: async (issued, reads) => {
      if (cred.kind === 'token' && !cred.used) await consumeTokenLocked(ca, cred.token);
      const how = cred.kind === 'token' ? `token ${cred.id}` : 'bootstrap secret';
      return {
        reply: await reply(reads, issued),
        audit: {
          event: 'enroll',
          result: 'ok',
          cn,
          serial: issued.serial,
          source: ctx.decision.source,
          detail: resumed ? `${how}; resumed: same key as serial ${resumed.row.serial}` : how,
        },
      };
    },
  });
}

/** What a signing request claims for its group: its identity and, for a node, its DNS names. */
function claimsOf(ctx: RouteContext, id: Identity, sans: readonly San[]): string[] {
  const profile = leafProfile(id, ctx.ca.domain, sans);
  return [`cn:${profile.cn}`, ...profile.dns.map((d) => `dns:${d}`)];
}

/** /renew and /agents authenticate with the client certificate only: any bearer is refused. */
export function mtlsPeer(ctx: RouteContext, req: IncomingMessage, route: string): Peer {
  if (req.headers.authorization !== undefined) {
    throw new RivetError(
      `${route} does not accept an Authorization header — the bootstrap secret and tokens work only at /enroll; ${route} authenticates with your client certificate`,
      'bearer_not_accepted',
    );
  }
  const peer = verifiedPeer(req, ctx.ca.domain);
  ctx.decision.cn = peer.info.subjectCNs[0];
  ctx.throttle?.take(commonName(peer.id, ctx.ca.domain), req, route);
  return peer;
}

export async function renew(ctx: RouteContext, peer: Peer, body: Record<string, unknown>): Promise<Reply> {
  const { ca } = ctx;
  const request = csrRequest(body);
  const cn = commonName(peer.id, ca.domain);
  if (request.cn !== cn)
    throw new RivetError(
      `CSR CN ${JSON.stringify(request.cn)} differs from your certificate's ${cn} — renewal keeps the identity`,
      'identity_mismatch',
    );
  const sans =
    request.sansText === undefined
      ? extraSans(peer.info, peer.id, ca)
      : nodeSans(ctx, peer.id, parseSans(request.sansText));
  const publicKey = await csrPublicKey(request.csr);
  if (!publicKeyDer(publicKey).equals(publicKeyDer(peer.info.x509))) {
    throw new RivetError(
      "CSR public key differs from the presented certificate's — renewal keeps the key; enroll again for a new one",
      'key_mismatch',
    );
  }
  refuseNotDue(peer.info);
  return signForPeer(ctx, peer, peer.id, request.csr, publicKey, sans, 'renew', async (reads) => {
    await refuseDeadNode(reads, peer.id);
    const want = leafProfile(peer.id, ca.domain, sans);
    return planRenewLocked(reads, cn, peer.info, publicKeyDer(publicKey), { dns: want.dns, ips: want.ips });
  });
}

export async function mintAgent(ctx: RouteContext, peer: Peer, body: Record<string, unknown>): Promise<Reply> {
  const { ca } = ctx;
  if (peer.id.kind !== 'node')
    throw new RivetError(
      `${ctx.decision.cn} is a ${peer.id.kind} certificate — /agents needs the node's own certificate`,
      'node_cert_required',
    );
  const request = csrRequest(body);
  const id = identityOfCn(request.cn, ca.domain);
  if (id.kind !== 'agent')
    throw new RivetError(`CSR CN ${JSON.stringify(request.cn)} must be <agent-id>@${peer.id.nodeId}`, 'bad_identity');
  if (id.nodeId !== peer.id.nodeId)
    throw new RivetError(
      `node ${peer.id.nodeId} may mint agents only as <agent-id>@${peer.id.nodeId}, not ${request.cn}`,
      'not_your_agent',
    );
  if (request.sansText?.length) throw new RivetError('agent certificates carry no extra SANs', 'bad_san');
  const publicKey = await csrPublicKey(request.csr);
  return signForPeer(ctx, peer, id, request.csr, publicKey, [], 'agent', (reads) =>
    planAgentLocked(reads, id, publicKeyDer(publicKey)),
  );
}

function nodeSans(ctx: RouteContext, id: Identity, sans: San[]): San[] {
  if (id.kind !== 'node' && sans.length) throw new RivetError('only node certificates carry extra SANs', 'bad_san');
  if (id.kind === 'node') for (const san of sans) checkNodeSanPolicy(san, id.nodeId, ctx.ca.domain, ctx.sanCidrs);
  return sans;
}

/**
 * Signs for a certificate holder after re-reading, under the lock, that its cert is still live;
 * `plan` then decides (lib/service/renewal-checks.ts) whether an existing certificate is given
 * again and which ones the new certificate supersedes.
 */
async function signForPeer(
  ctx: RouteContext,
  peer: Peer,
  id: Identity,
  csr: string,
  publicKey: KeyObject,
  sans: readonly San[],
  event: string,
  plan: (reads: GroupReads) => Promise<CheckResult>,
): Promise<Reply> {
  const { ca } = ctx;
  return ctx.queue.sign({
    id,
    csrPem: csr,
    publicKey,
    sans,
    claims: claimsOf(ctx, id, sans),
    checkLocked: async (reads) => {
      const row = (await reads.rows()).find((e) => e.row.serial === peer.info.serial)?.row;
      if (!row)
        throw new RivetError(`certificate serial ${peer.info.serial} is not in this CA's database`, 'unknown_cert');
      if (!isLive(row)) {
        const revoked = row.status === 'R';
        throw new RivetError(
          `certificate serial ${peer.info.serial} is ${revoked ? 'revoked' : 'expired'}`,
          'cert_not_live',
          { reason: revoked ? 'CERT_REVOKED' : 'CERT_HAS_EXPIRED' },
        );
      }
      await refuseRevokedKey(reads, commonName(id, ca.domain), publicKey);
      return plan(reads);
    },
    finishLocked: async (issued, reads, reused) => {
      const detail = `by ${ctx.decision.cn} serial ${peer.info.serial}${reused ? `; already issued: serial ${issued.serial} given again` : ''}`;
      return {
        reply: await reply(reads, issued),
        audit: { event, result: 'ok', cn: issued.cn, serial: issued.serial, source: ctx.decision.source, detail },
      };
    },
  });
}

/** Rows of one CN that pass `which`, with the public key of the certificate openssl kept. */
async function rowsWithKey(
  reads: GroupReads,
  cn: string,
  which: (e: DbEntry) => boolean,
): Promise<Array<{ row: DbEntry; key?: Buffer }>> {
  const mine = (await reads.rows()).filter((e) => e.row.cn === cn && which(e.row));
  return Promise.all(mine.map(async (e) => ({ row: e.row, key: await reads.certKey(e.dir, e.row.serial) })));
}

/**
 * A revocation is undone only by a new key: the key of a revoked, unexpired certificate of this CN
 * (revoked perhaps for keyCompromise) is never certified again — not by /enroll with the secret,
 * and not by a node re-minting its revoked agent at /agents, as provision-ct renew does for every
 * agent of a renewed node. Caller holds the CA lock.
 */
async function refuseRevokedKey(reads: GroupReads, cn: string, publicKey: KeyObject): Promise<void> {
  const spki = publicKeyDer(publicKey);
  const now = new Date();
  // `superseded` is the renewal cap retiring an older certificate of the same key, not a verdict on the key.
  const hit = (
    await rowsWithKey(
      reads,
      cn,
      (e) => e.status === 'R' && e.reason !== 'superseded' && e.notAfter.getTime() > now.getTime(),
    )
  ).find((r) => r.key?.equals(spki));
  if (hit)
    throw new RivetError(
      `this key belongs to ${cn}'s revoked certificate (serial ${hit.row.serial}) — make a new key and ask again`,
      'revoked_key',
    );
}

async function reply(reads: GroupReads, issued: Issued): Promise<Reply> {
  const { store } = reads.ca;
  const [chain, crl] = await Promise.all([reads.text(store.chainFile), reads.text(store.crlBundle)]);
  return {
    cn: issued.cn,
    serial: issued.serial,
    notAfter: issued.info.notAfter.toISOString(),
    cert: issued.certPem,
    chain,
    crl,
  };
}
