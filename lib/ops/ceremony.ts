// Root ceremonies (DESIGN §4.6): the root key leaves the CA host after the intermediate is made
// (`root offline`, which first signs the root CRL series for the years ahead), comes back only for
// a ceremony (`root online`), and re-signs that series (`root crl`). Every step runs under the CA
// lock and checks the key against ca.crt.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { Ca } from '../ca/handle.ts';
import { issuerCert } from '../ca/handle.ts';
import { requireRootKey } from './hierarchy.ts';
import { readPkcs11 } from '../sign/pkcs11.ts';
import { readRootCrlSeries, signRootCrlSeriesLocked, signedSince, type SeriesInfo } from '../sign/root-crl-series.ts';
import { DAY_MS } from '../core/duration.ts';
import { KEY_MODE, PUBLIC_MODE, PRIVATE_DIR_MODE, exists, readText, syncDir, writeAtomic } from '../sys/files.ts';
import { audit } from '../sys/audit.ts';
import { RivetError, UsageError, show } from '../core/errors.ts';
import { writeBundleLocked } from '../ca/published.ts';
import { transaction } from '../sign/transaction.ts';

/** Signing within this long before `root offline` counts as the same ceremony. */
const CEREMONY_MS = DAY_MS;

/** Refuses, naming the fix, when the root cannot sign now; checked before the lock. */
export const requireRootSigner = requireRootKey;

/** Throws unless `pem` is the private key of the root certificate. */
async function checkRootKey(ca: Ca, pem: string, where: string): Promise<void> {
  let publicDer: Buffer;
  try {
    publicDer = createPublicKey(createPrivateKey({ key: pem, passphrase: ca.root?.passphrase })).export({
      type: 'spki',
      format: 'der',
    });
  } catch (err) {
    if (pem.includes('ENCRYPTED') && !ca.root?.passphrase) {
      throw new UsageError(
        `${where} is encrypted — give its passphrase with --root-passphrase-file FILE so it can be checked against the root certificate`,
        'root_locked',
      );
    }
    throw new RivetError(`${where} is not a readable private key: ${(err as Error).message}`, 'bad_key');
  }
  const root = await issuerCert(ca.store.root());
  if (!publicDer.equals(root.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new RivetError(
      `${where} does not belong to the root certificate ${ca.store.root().cert} — wrong key (or wrong CA directory)`,
      'key_mismatch',
    );
  }
}

async function refuseToken(ca: Ca, what: string): Promise<void> {
  const token = await readPkcs11(ca.store.rootDir);
  if (token)
    throw new UsageError(
      `${what}: the root key is in a PKCS#11 token (${token.uri}), never on disk — take the token offline instead`,
      'root_in_token',
    );
}

function inside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export type OfflineResult = { key: string; cert: string };

/**
 * Copies the root key to `toDir` (0600, fsynced), reads the copy back and checks it against
 * ca.crt, and only then deletes the key from the CA host. A rerun after a crash between copy and
 * delete finds the identical copy and finishes. (Deleting a file does not scrub it from an SSD or
 * a copy-on-write filesystem; a root that must never have touched the disk belongs in a token.)
 */
export async function rootOffline(ca: Ca, toDir: string): Promise<OfflineResult> {
  const { store } = ca;
  const target = path.resolve(toDir);
  if (inside(target, store.dir))
    throw new UsageError(
      `--to ${show(toDir)} is inside the CA directory ${store.dir} — the point is to take the key off this host (removable media, an offline machine)`,
    );
  await refuseToken(ca, 'root offline');
  return transaction(ca, 'root offline', async () => {
    const root = store.root();
    const keyPem = await readText(root.key);
    if (keyPem === undefined)
      throw new UsageError(
        `the root key is already offline (no ${root.key}) — bring it back with \`rivet-ca root online --from DIR\``,
        'already_offline',
      );
    await checkRootKey(ca, keyPem, root.key);
    if (!(await exists(target))) await fsp.mkdir(target, { recursive: true, mode: PRIVATE_DIR_MODE });
    const dest = path.join(target, 'ca.key');
    const there = await readText(dest);
    if (there !== undefined && there !== keyPem)
      throw new UsageError(`${dest} already holds a different key — choose an empty directory`, 'exists');
    if (there === undefined) await writeAtomic(dest, keyPem, KEY_MODE);
    const certPem = await fsp.readFile(root.cert, 'utf8');
    if ((await readText(path.join(target, 'ca.crt'))) !== certPem)
      await writeAtomic(path.join(target, 'ca.crt'), certPem, PUBLIC_MODE);
    // Verify the copy as it is on the medium, not the bytes we meant to write.
    const back = await fsp.readFile(dest, 'utf8');
    if (back !== keyPem)
      throw new RivetError(
        `the copy at ${dest} differs from the root key — the key was NOT removed; check the medium`,
        'copy',
      );
    await checkRootKey(ca, back, dest);
    const mode = (await fsp.stat(dest)).mode & 0o777;
    if (mode !== KEY_MODE)
      throw new RivetError(
        `the copy at ${dest} has mode ${mode.toString(8)}, want 600 — the key was NOT removed (does the medium keep Unix modes?)`,
        'copy',
      );
    // The last thing the key does here: root CRLs for the years it will be away — unless this
    // ceremony already signed them (issue-intermediate, rotate-intermediate, `root crl --days N`).
    if (!signedSince(await readRootCrlSeries(store), CEREMONY_MS)) {
      await signRootCrlSeriesLocked(ca);
      await writeBundleLocked(ca);
    }
    await fsp.rm(root.key);
    await syncDir(root.dir);
    await audit(store.auditLog, { event: 'root-offline', result: 'ok', detail: dest });
    return { key: dest, cert: path.join(target, 'ca.crt') };
  });
}

/** Brings the root key back from `from` (a directory holding ca.key, or the key file itself). */
export async function rootOnline(ca: Ca, from: string): Promise<{ key: string; already: boolean }> {
  const { store } = ca;
  await refuseToken(ca, 'root online');
  let src = path.resolve(from);
  if ((await fsp.stat(src).catch(() => undefined))?.isDirectory()) src = path.join(src, 'ca.key');
  return transaction(ca, 'root online', async () => {
    const root = store.root();
    const pem = await readText(src);
    if (pem === undefined)
      throw new UsageError(`no root key at ${show(src)} — give the directory \`root offline\` wrote to`, 'not_found');
    await checkRootKey(ca, pem, src);
    const present = await readText(root.key);
    if (present !== undefined) {
      if (present === pem) return { key: root.key, already: true };
      throw new RivetError(`${root.key} already holds a different key — move it aside, then retry`, 'exists');
    }
    await writeAtomic(root.key, pem, KEY_MODE);
    await audit(store.auditLog, { event: 'root-online', result: 'ok', detail: src });
    return { key: root.key, already: false };
  });
}

export const ROOT_CRL_MAX_DAYS = 3650;
export const ROOT_CRL_MAX_YEARS = 10;

export type RootCrlOptions = { days?: number; years?: number };

/**
 * Re-signs the root's CRLs and rebuilds crl.pem: a series of overlapping 365-day windows for the
 * next `years` (default 5; lib/sign/root-crl-series.ts), or with `days` one CRL valid that long.
 */
export async function rootCrl(ca: Ca, opts: RootCrlOptions = {}): Promise<SeriesInfo> {
  const { days, years } = opts;
  if (days !== undefined && (!Number.isInteger(days) || days < 1 || days > ROOT_CRL_MAX_DAYS))
    throw new UsageError(`--days ${show(days)} must be a whole number from 1 to ${ROOT_CRL_MAX_DAYS}`);
  if (years !== undefined && (!Number.isInteger(years) || years < 1 || years > ROOT_CRL_MAX_YEARS))
    throw new UsageError(`--years ${show(years)} must be a whole number from 1 to ${ROOT_CRL_MAX_YEARS}`);
  if (days !== undefined && years !== undefined)
    throw new UsageError('give --days (one root CRL) or --years (a series), not both');
  await requireRootSigner(ca, 'root crl');
  return transaction(ca, 'root crl', async () => {
    const series = await signRootCrlSeriesLocked(ca, days === undefined ? { years } : { windowDays: days, years: 0 });
    await writeBundleLocked(ca);
    await audit(ca.store.auditLog, {
      event: 'crl',
      result: 'ok',
      detail: `root, ${series.windows} window(s) until ${series.end.toISOString()}`,
    });
    return series;
  });
}
