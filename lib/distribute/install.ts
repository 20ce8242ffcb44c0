// Installing a CRL bundle on a node (DESIGN §5): the one code path behind the push receiver, the
// pull and the CRLs that come with enrollment and renewal. crl-plan.ts decides; this file reads the
// node dir, persists the high-water marks (crl-state.ts) and writes the result atomically.
//
// A pull or push also brings the chain (GET /ca.crt): intermediates come and go (rotate-intermediate,
// tidy), and a bundle for the new set only verifies against the new chain, so rivet-ca.crt follows —
// but only with CA certificates signed by the very root already installed, and it never loses a CA
// whose certificates can still be valid here (crl-plan.ts says when one may go).
// Length (over 250 lines once formatted): the one install path for push, pull and enrollment, with
// its lock and its refusal recording; the decisions themselves are in crl-plan.ts.
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { RivetError, show } from '../core/errors.ts';
import { parseCrlBundle, crlSignedBy, type CrlInfo } from '../x509/crl.ts';
import { derToPem, pemToDer } from '../x509/der.ts';
import { withLock } from '../sys/lock.ts';
import { PUBLIC_MODE, writeAtomic } from '../sys/files.ts';
import { meshTlsFiles } from '../mesh/tls.ts';
import { reloadWatchers } from '../mesh/watch.ts';
import { CrlRefused } from './refused.ts';
import { nameOf, planDelivery, type Dropped, type Paired } from './crl-plan.ts';
import {
  readCrlState,
  raiseMark,
  writeCrlState,
  type CrlEvent,
  type CrlMark,
  type CrlSource,
  type CrlState,
  type KeptCa,
} from './crl-state.ts';

export { CrlRefused } from './refused.ts';

export type CrlSummary = { issuer: string; crlNumber: string; nextUpdate?: string; revoked: number };
export type InstallResult = {
  installed: boolean;
  reason: 'installed' | 'unchanged';
  crls: CrlSummary[];
  kept?: KeptCa[];
  dropped?: Dropped[];
};
export type InstallOptions = {
  /** The CA chain that came with the bundle (GET /ca.crt, or the certificates of a push body). */
  chain?: string;
  /** Where it came from, for crl-state.json and `provision-ct status`. */
  source?: CrlSource;
  from?: string;
  now?: Date;
};

function parseCerts(pem: string, what: string): X509Certificate[] {
  try {
    return pemToDer(pem, 'CERTIFICATE').map((der) => new X509Certificate(der));
  } catch (err) {
    throw new CrlRefused(`${what} refused: ${(err as Error).message}`, 'bad_chain');
  }
}

/** The CA certificates of a served chain: the installed root byte for byte, plus CAs it signed. */
function servedCas(servedPem: string, installedRoot: X509Certificate): X509Certificate[] {
  const served = parseCerts(servedPem, 'served chain');
  const root = served.find((c) => c.raw.equals(installedRoot.raw));
  if (!root)
    throw new CrlRefused(
      'served chain refused: it does not hold the root installed in rivet-ca.crt — wrong CA?',
      'bad_chain',
    );
  const out: X509Certificate[] = [];
  for (const c of served) {
    if (c !== root && !(c.ca && c.checkIssued(root) && c.verify(root.publicKey))) {
      throw new CrlRefused(
        `served chain refused: ${show(nameOf(c))} is not a CA certificate signed by the installed root`,
        'bad_chain',
      );
    }
    if (!out.some((o) => o.raw.equals(c.raw))) out.push(c);
  }
  return out;
}

function chainCerts(chainPem: string): X509Certificate[] {
  const certs = pemToDer(chainPem, 'CERTIFICATE')
    .map((der) => new X509Certificate(der))
    .filter((c) => c.ca);
  const root = certs.find((c) => c.checkIssued(c));
  if (!root)
    throw new RivetError(
      'installed CA chain (rivet-ca.crt) holds no root certificate — re-enroll or fetch /ca.crt',
      'no_chain',
    );
  return certs;
}

const rootOf = (cas: X509Certificate[]) => cas.find((c) => c.checkIssued(c))!;

/**
 * The chain served at /ca.crt, if it is usable in place of `installedPem`: the same root (byte for
 * byte) and otherwise only CA certificates that root signed. Throws a 400 CrlRefused otherwise.
 */
export function acceptServedChain(servedPem: string, installedPem: string): string {
  return servedCas(servedPem, rootOf(chainCerts(installedPem)))
    .map((c) => c.toString())
    .join('');
}

function parseBundle(pem: string): CrlInfo[] {
  try {
    return parseCrlBundle(pem);
  } catch (err) {
    throw new CrlRefused(`CRL bundle refused: ${(err as Error).message}`, 'bad_crl');
  }
}

/** The persisted marks, raised to whatever the installed crl.pem holds (nodes enrolled before the marks existed). */
function marksWithInstalled(state: CrlState, installed: CrlInfo[], cas: X509Certificate[]): Map<string, CrlMark> {
  const marks = new Map(state.marks);
  for (const crl of installed) {
    const ca = cas.find((c) => crlSignedBy(crl, c));
    if (ca && crl.crlNumber !== undefined) raiseMark(marks, ca, nameOf(ca), crl.crlNumber, crl.thisUpdate);
  }
  return marks;
}

/** Checks `pem` against `chainPem` (and the CRLs in `installedPem`) as a direct install would; returns the pairs. */
export function verifyCrlBundle(pem: string, chainPem: string, installedPem?: string, now = new Date()): Paired[] {
  const cas = chainCerts(chainPem);
  let installed: CrlInfo[] = [];
  try {
    installed = installedPem ? parseCrlBundle(installedPem) : [];
  } catch {
    /* a broken installed file is simply replaced */
  }
  const marks = marksWithInstalled({ marks: new Map(), kept: [] }, installed, cas);
  return planDelivery({ installedChain: cas, bundle: parseBundle(pem), installedCrls: installed, marks, now }).crls;
}

function summary(pairs: Paired[]): CrlSummary[] {
  return pairs.map(({ ca, crl }) => ({
    issuer: nameOf(ca),
    crlNumber: String(crl.crlNumber),
    nextUpdate: crl.nextUpdate?.toISOString(),
    revoked: crl.revoked.length,
  }));
}

const sameDers = (a: Buffer[], b: Buffer[]) => a.length === b.length && a.every((d, i) => d.equals(b[i]!));
const sameMarks = (a: Map<string, CrlMark>, b: Map<string, CrlMark>) =>
  a.size === b.size && [...a].every(([k, m]) => b.get(k)?.crlNumber === m.crlNumber);

const lockFile = (nodeDir: string) => path.join(nodeDir, '.crl.lock');

// When this process last recorded a refusal per node dir: checked before the lock is taken.
const lastRecorded = new Map<string, number>();
const RECORD_EVERY_MS = 1000;

/**
 * Records a refusal decided outside installCrlBundle (the push sender, the body) for `provision-ct
 * status`. At most one per node dir per second per process, decided before taking the CRL lock, and
 * the same refusal within a second is not written again by another process either: a refused sender
 * (say one alternating two agent certs) must not be able to turn its requests into a stream of
 * fsyncs under the lock the CA host's push then queues behind. Status shows a recent refusal, not
 * necessarily the very latest.
 */
export async function recordRefusal(dir: string, e: Omit<CrlEvent, 'at'>): Promise<void> {
  const nodeDir = path.resolve(dir);
  const now = Date.now();
  if (now - (lastRecorded.get(nodeDir) ?? -Infinity) < RECORD_EVERY_MS) return;
  lastRecorded.set(nodeDir, now);
  await withLock(
    lockFile(nodeDir),
    'record a CRL refusal',
    async () => {
      const state = await readCrlState(nodeDir);
      const last = state.lastRefusal;
      if (last && last.code === e.code && last.from === e.from && Date.now() - Date.parse(last.at) < 1000) return;
      await writeCrlState(nodeDir, { ...state, lastRefusal: { at: new Date().toISOString(), ...e } });
    },
    { timeoutMs: 10_000 },
  );
}

/**
 * Checks `pem` (and `opts.chain`) against what `dir` holds and, when it changes something, writes
 * rivet-ca.crt, crl.pem and crl-state.json atomically and switches this process's watched servers
 * before returning. A refusal is recorded in crl-state.json and thrown as CrlRefused.
 */
export async function installCrlBundle(dir: string, pem: string, opts: InstallOptions = {}): Promise<InstallResult> {
  const files = meshTlsFiles(path.resolve(dir));
  const nodeDir = path.dirname(files.crl);
  return withLock(
    lockFile(nodeDir),
    'install crl.pem',
    async () => {
      let installedChainPem: string;
      try {
        installedChainPem = fs.readFileSync(files.ca, 'utf8');
      } catch {
        throw new RivetError(
          `cannot read the CA chain ${show(files.ca)} to check the CRL against — enroll this node first`,
          'no_chain',
        );
      }
      const installedChain = chainCerts(installedChainPem);
      let installedCrls: CrlInfo[] = [];
      try {
        installedCrls = fs.existsSync(files.crl) ? parseCrlBundle(fs.readFileSync(files.crl, 'utf8')) : [];
      } catch {
        /* a broken installed file is simply replaced */
      }
      const state = await readCrlState(nodeDir);
      const marks = marksWithInstalled(state, installedCrls, installedChain);
      const event = {
        at: (opts.now ?? new Date()).toISOString(),
        source: opts.source ?? 'install',
        ...(opts.from ? { from: opts.from } : {}),
      } as const;
      try {
        const served = opts.chain === undefined ? undefined : servedCas(opts.chain, rootOf(installedChain));
        const plan = planDelivery({
          installedChain,
          served,
          bundle: parseBundle(pem),
          installedCrls,
          marks,
          now: opts.now ?? new Date(),
        });
        const chainDers = plan.chain.map((c) => c.raw);
        const crlDers = plan.crls.map((p) => p.crl.der);
        const newChain = !sameDers(pemToDer(installedChainPem, 'CERTIFICATE'), chainDers);
        const result = {
          crls: summary(plan.crls),
          ...(plan.kept.length ? { kept: plan.kept } : {}),
          ...(plan.dropped.length ? { dropped: plan.dropped } : {}),
        };
        if (
          !newChain &&
          sameDers(
            installedCrls.map((c) => c.der),
            crlDers,
          )
        ) {
          // Nothing new, and the delivery would have dropped a CA still in use: say so (once per
          // such CA), rather than answer "unchanged" to what is either a replay or a retirement
          // this node cannot follow yet.
          const fresh = plan.kept.filter((k) => !state.kept.some((s) => s.ca === k.ca));
          if (fresh.length) {
            state.kept = plan.kept;
            throw new CrlRefused(
              `CRL delivery refused: ${fresh.map((k) => k.why).join('; ')}; nothing else in it was newer`,
              'ca_still_live',
            );
          }
          const sameKept =
            plan.kept.length === state.kept.length && plan.kept.every((k) => state.kept.some((s) => s.ca === k.ca));
          if (!sameMarks(marks, state.marks) || !sameKept || state.problem)
            await writeCrlState(nodeDir, { ...state, marks, kept: plan.kept });
          return { installed: false, reason: 'unchanged', ...result };
        }
        // Chain first: the CRLs just checked against it are then never on disk without it.
        if (newChain) await writeAtomic(files.ca, plan.chain.map((c) => c.toString()).join(''), PUBLIC_MODE);
        // Only the verified CRLs are written, re-encoded: nothing else in the body reaches the disk.
        await writeAtomic(files.crl, crlDers.map((der) => derToPem(der, 'X509 CRL')).join(''), PUBLIC_MODE);
        for (const { ca, crl } of plan.crls) raiseMark(marks, ca, nameOf(ca), crl.crlNumber!, crl.thisUpdate);
        await writeCrlState(nodeDir, { ...state, marks, kept: plan.kept, lastInstall: event });
        await reloadWatchers(nodeDir);
        return { installed: true, reason: 'installed', ...result };
      } catch (err) {
        if (err instanceof CrlRefused)
          await writeCrlState(nodeDir, {
            ...state,
            marks,
            lastRefusal: { ...event, code: err.code, message: err.message },
          });
        throw err;
      }
    },
    { timeoutMs: 10_000 },
  );
}
