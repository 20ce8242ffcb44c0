// What a node remembers about the CRLs it has installed (DESIGN §5), in <node dir>/crl-state.json:
// for every CA it ever held a CRL of, the highest crlNumber installed (the high-water mark), plus the
// last installation and the last refusal for `provision-ct status`.
//
// The mark is keyed by the CA's key (SHA-256 of its SubjectPublicKeyInfo), not by its place in
// rivet-ca.crt: a chain that omits a CA and later brings it back, with a CRL saved from before a
// revocation, must still find the mark it left. crl.pem alone cannot carry that — it holds only the
// CAs of the current chain. Marks are never removed; there is one per intermediate ever trusted.
import crypto, { type X509Certificate } from 'node:crypto';
import path from 'node:path';
import { PUBLIC_MODE, readText, writeAtomic } from '../sys/files.ts';

export const CRL_STATE_FILE = 'crl-state.json';

export type CrlMark = { ca: string; crlNumber: bigint; thisUpdate: string };
export type CrlSource = 'push' | 'pull' | 'install';
export type CrlEvent = { at: string; source: CrlSource; code: string; message: string; from?: string };
/** A CA a delivery left out of its chain that this node keeps (its certificates can still be valid). */
export type KeptCa = { ca: string; why: string };

export type CrlState = {
  marks: Map<string, CrlMark>;
  lastInstall?: Omit<CrlEvent, 'code' | 'message'>;
  lastRefusal?: CrlEvent;
  kept: KeptCa[];
  /** Set when the file existed but could not be read: the marks then come from crl.pem alone. */
  problem?: string;
};

/** The key a CA's marks are filed under: SHA-256 of its public key (RFC 7093 method 1, full length). */
export function caKeyId(ca: X509Certificate): string {
  return crypto
    .createHash('sha256')
    .update(ca.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export const crlStatePath = (dir: string) => path.join(dir, CRL_STATE_FILE);

export async function readCrlState(dir: string): Promise<CrlState> {
  const text = await readText(crlStatePath(dir));
  const state: CrlState = { marks: new Map(), kept: [] };
  if (text === undefined) return state;
  try {
    const raw = JSON.parse(text) as {
      marks?: Record<string, { ca: string; crlNumber: string; thisUpdate: string }>;
      lastInstall?: CrlEvent;
      lastRefusal?: CrlEvent;
      kept?: KeptCa[];
    };
    for (const [key, m] of Object.entries(raw.marks ?? {})) {
      if (!/^[0-9a-f]{64}$/.test(key) || !/^\d{1,40}$/.test(String(m.crlNumber)))
        throw new Error(`bad mark ${JSON.stringify(key)}`);
      state.marks.set(key, { ca: String(m.ca), crlNumber: BigInt(m.crlNumber), thisUpdate: String(m.thisUpdate) });
    }
    if (raw.lastInstall) state.lastInstall = raw.lastInstall;
    if (raw.lastRefusal) state.lastRefusal = raw.lastRefusal;
    if (Array.isArray(raw.kept)) state.kept = raw.kept.map((k) => ({ ca: String(k.ca), why: String(k.why) }));
  } catch (err) {
    // Whoever can corrupt this file can rewrite crl.pem too (same directory, same owner), so
    // falling back to the marks in crl.pem loses nothing an attacker could not take anyway —
    // whereas refusing every CRL from now on would let the installed ones lapse.
    return {
      marks: new Map(),
      kept: [],
      problem: `${CRL_STATE_FILE} is unreadable (${(err as Error).message}); the rollback marks come from crl.pem alone until the next install rewrites it`,
    };
  }
  return state;
}

export async function writeCrlState(dir: string, s: CrlState): Promise<void> {
  const marks = Object.fromEntries(
    [...s.marks]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, m]) => [k, { ca: m.ca, crlNumber: m.crlNumber.toString(), thisUpdate: m.thisUpdate }]),
  );
  const body = {
    marks,
    kept: s.kept,
    ...(s.lastInstall ? { lastInstall: s.lastInstall } : {}),
    ...(s.lastRefusal ? { lastRefusal: s.lastRefusal } : {}),
  };
  await writeAtomic(crlStatePath(dir), `${JSON.stringify(body, null, 2)}\n`, PUBLIC_MODE);
}

/** Raises (never lowers) the mark of `ca` to `crlNumber`. */
export function raiseMark(
  marks: Map<string, CrlMark>,
  ca: X509Certificate,
  name: string,
  crlNumber: bigint,
  thisUpdate: Date,
): void {
  const key = caKeyId(ca);
  const have = marks.get(key);
  if (!have || crlNumber > have.crlNumber)
    marks.set(key, { ca: name, crlNumber, thisUpdate: thisUpdate.toISOString() });
}
