// One-time enrollment tokens (DESIGN §4.7; SPIRE join tokens and step's one-time tokens are the
// model): random, bound to one node-id, expiring, single-use. Only their SHA-256 is stored, so a
// copy of the CA directory does not hand out enrollments. Minting and consuming happen under the
// CA lock, so a token is spent exactly once even with the CLI and the service side by side.
import crypto from 'node:crypto';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import { audit } from '../sys/audit.ts';
import { KEY_MODE, readText, writeAtomic } from '../sys/files.ts';
import { RivetError, UsageError, show } from '../core/errors.ts';
import type { NodeId } from '../core/identity.ts';
import { transaction } from '../sign/transaction.ts';

export const TOKEN_PREFIX = 'rvt_';
export const DEFAULT_TOKEN_TTL_MS = 60 * 60_000;
export const MAX_TOKEN_TTL_MS = 30 * 24 * 60 * 60_000;

type StoredToken = { hash: string; node: string; created: string; expires: string; used?: string };

export type TokenCheck =
  | { ok: true; node: NodeId; id: string }
  | { ok: false; why: 'unknown' | 'used' | 'expired'; node?: string; id: string };

export const tokenFile = (ca: Ca) => path.join(ca.store.dir, 'enroll-tokens.json');

export const hashToken = (token: string): string => crypto.createHash('sha256').update(token, 'utf8').digest('hex');

/** The short id audit.log and operators use for a token: a prefix of its hash, never the token. */
export const tokenId = (hash: string): string => hash.slice(0, 12);

export const looksLikeToken = (text: string): boolean => /^rvt_[A-Za-z0-9_-]{43}$/.test(text);

async function load(ca: Ca): Promise<StoredToken[]> {
  const text = await readText(tokenFile(ca));
  if (text === undefined) return [];
  try {
    const list = JSON.parse(text) as unknown;
    if (!Array.isArray(list)) throw new Error('not a list');
    return list as StoredToken[];
  } catch (err) {
    throw new RivetError(
      `token store ${tokenFile(ca)} is unreadable (${(err as Error).message}) — move it aside; outstanding tokens are then void`,
      'token_store',
    );
  }
}

/** Drops entries past their expiry; a used token is kept until then so its reuse is reported as such. */
async function saveLocked(ca: Ca, list: StoredToken[], now: Date): Promise<void> {
  const live = list.filter((t) => Date.parse(t.expires) > now.getTime());
  await writeAtomic(tokenFile(ca), `${JSON.stringify(live, null, 1)}\n`, KEY_MODE);
}

export async function mintToken(
  ca: Ca,
  node: NodeId,
  ttlMs = DEFAULT_TOKEN_TTL_MS,
  now = new Date(),
): Promise<{ token: string; id: string; expires: Date }> {
  if (!Number.isInteger(ttlMs) || ttlMs < 60_000 || ttlMs > MAX_TOKEN_TTL_MS)
    throw new UsageError(`--ttl ${show(ttlMs / 1000)}s must be from 1m to 30d`);
  await ca.store.current(); // a token for a CA that cannot issue would only fail later
  const token = `${TOKEN_PREFIX}${crypto.randomBytes(32).toString('base64url')}`;
  const hash = hashToken(token);
  const expires = new Date(now.getTime() + ttlMs);
  await transaction(ca, `token ${node}`, async () => {
    const list = await load(ca);
    list.push({ hash, node, created: now.toISOString(), expires: expires.toISOString() });
    await saveLocked(ca, list, now);
    await audit(ca.store.auditLog, {
      event: 'token',
      result: 'ok',
      cn: `${node}.${ca.domain}`,
      detail: `token ${tokenId(hash)} until ${expires.toISOString()}`,
    });
  });
  return { token, id: tokenId(hash), expires };
}

function judge(list: StoredToken[], hash: string, now: Date): TokenCheck {
  const t = list.find(
    (x) => x.hash.length === hash.length && crypto.timingSafeEqual(Buffer.from(x.hash), Buffer.from(hash)),
  );
  const id = tokenId(hash);
  if (!t) return { ok: false, why: 'unknown', id };
  if (t.used) return { ok: false, why: 'used', node: t.node, id };
  if (Date.parse(t.expires) <= now.getTime()) return { ok: false, why: 'expired', node: t.node, id };
  return { ok: true, node: t.node as NodeId, id };
}

/** A read-only look (no lock): lets the service refuse a bad token before doing any work. */
export async function checkToken(ca: Ca, token: string, now = new Date()): Promise<TokenCheck> {
  return judge(await load(ca), hashToken(token), now);
}

/** Marks the token used. The caller holds the CA lock and has re-checked it in that same hold. */
export async function consumeTokenLocked(ca: Ca, token: string, now = new Date()): Promise<TokenCheck> {
  const list = await load(ca);
  const hash = hashToken(token);
  const verdict = judge(list, hash, now);
  if (!verdict.ok) return verdict;
  const entry = list.find((x) => x.hash === hash)!;
  entry.used = now.toISOString();
  await saveLocked(ca, list, now);
  return verdict;
}
