// Root CRLs that outlast an offline root (DESIGN §5, §4.6). The root key comes back only for a
// ceremony, maybe once in years; a single root CRL would lapse in between and take every mTLS hop
// down (easy-rsa #1231). So each ceremony signs a series: CRLs whose validity windows follow one
// another and overlap (each 365 days, one starting every 180), for the next five years, kept in
// root/crl-series.pem. root/crl.pem — what crl.pem and serve's /crl.pem carry — is the current
// one; `make renew` and the running service swap in the next one once its window has started
// (plus a day, for nodes whose clocks lag), with no key. Members are signed in window order, so
// their crlNumbers rise as receivers require. A change to the root's database (an intermediate
// revoked) needs the root anyway, and re-signs the series.
import path from 'node:path';
import type { Ca, IssuerSecret } from '../ca/handle.ts';
import type { CaStore, Issuer } from '../ca/store.ts';
import { issuerCert } from '../ca/handle.ts';
import { PUBLIC_MODE, readText, writeAtomic } from '../sys/files.ts';
import { parseCrlDer, type CrlInfo } from '../x509/crl.ts';
import { derToPem, pemToDer } from '../x509/der.ts';
import { DAY_MS } from '../core/duration.ts';
import { signCrlWindow } from './signer.ts';

export const ROOT_CRL_WINDOW_DAYS = 365;
export const ROOT_CRL_STEP_DAYS = 180;
export const ROOT_CRL_SERIES_YEARS = 5;
/** A window is published a day after it starts: a node whose clock is behind still finds it valid. */
export const ROOT_CRL_SWITCH_MS = DAY_MS;
/** Like every CRL and leaf (DESIGN §3), the first window starts 5 minutes back; never before the root. */
const BACKDATE_MS = 5 * 60_000;

export type Window = { thisUpdate: Date; nextUpdate: Date };
export type SeriesOptions = { windowDays?: number; years?: number; now?: Date };

export const seriesFile = (store: CaStore): string => path.join(store.rootDir, 'crl-series.pem');

/**
 * The windows of a series from `start`: `windowDays` long, overlapping by half or more, until one
 * reaches `years` out; none past the root's own end. `years` 0: one window, as `root crl --days N`.
 */
export function seriesWindows(start: Date, rootEnd: Date, opts: SeriesOptions = {}): Window[] {
  const window = (opts.windowDays ?? ROOT_CRL_WINDOW_DAYS) * DAY_MS;
  const step = Math.min(ROOT_CRL_STEP_DAYS * DAY_MS, window / 2);
  const until = start.getTime() + (opts.years ?? ROOT_CRL_SERIES_YEARS) * 365 * DAY_MS;
  const out: Window[] = [];
  for (let t = start.getTime(); t < rootEnd.getTime(); t += step) {
    const next = Math.min(t + window, rootEnd.getTime());
    out.push({ thisUpdate: new Date(t), nextUpdate: new Date(next) });
    if (next >= until || next >= rootEnd.getTime()) break;
  }
  return out;
}

function signWindow(root: Issuer, w: Window, secret: IssuerSecret | undefined): Promise<string> {
  return signCrlWindow(root, w, 'sha256', secret);
}

export type SeriesInfo = { windows: number; end: Date; current: CrlInfo };

/**
 * Signs a new series with the root key (the caller has checked it is usable and holds the CA
 * lock), keeps it in root/crl-series.pem and installs its first window as root/crl.pem. The
 * caller rebuilds the bundle (writeBundleLocked).
 */
export async function signRootCrlSeriesLocked(ca: Ca, opts: SeriesOptions = {}): Promise<SeriesInfo> {
  const root = ca.store.root();
  const rootX = await issuerCert(root);
  const now = opts.now ?? new Date();
  const start = new Date(
    Math.max(Math.floor((now.getTime() - BACKDATE_MS) / 1000) * 1000, new Date(rootX.validFrom).getTime()),
  );
  const windows = seriesWindows(start, new Date(rootX.validTo), opts);
  const pems: string[] = [];
  for (const w of windows) pems.push(await signWindow(root, w, ca.root));
  await writeAtomic(seriesFile(ca.store), pems.join(''), PUBLIC_MODE);
  await writeAtomic(root.crl, pems[0]!, PUBLIC_MODE);
  return {
    windows: windows.length,
    end: windows[windows.length - 1]!.nextUpdate,
    current: parseCrlDer(pemToDer(pems[0]!, 'X509 CRL')[0]!),
  };
}

/** The series as signed, in window order; undefined when this CA has none (made before series). */
export async function readRootCrlSeries(store: CaStore): Promise<CrlInfo[] | undefined> {
  const pem = await readText(seriesFile(store));
  if (pem === undefined) return undefined;
  return pemToDer(pem, 'X509 CRL').map(parseCrlDer);
}

/** Which member should be published at `now`: the latest started a day ago, else the earliest valid. */
export function currentWindow(series: readonly CrlInfo[], now = new Date()): number | undefined {
  const t = now.getTime();
  const valid = series
    .map((c, i) => ({ c, i }))
    .filter(({ c }) => c.thisUpdate.getTime() <= t && (c.nextUpdate?.getTime() ?? 0) > t);
  const settled = valid.filter(({ c }) => c.thisUpdate.getTime() <= t - ROOT_CRL_SWITCH_MS);
  return (settled.length ? settled[settled.length - 1] : valid[0])?.i;
}

/** True when the series was signed less than `ms` ago (its first window starts 5 minutes before signing). */
export function signedSince(series: readonly CrlInfo[] | undefined, ms: number, now = new Date()): boolean {
  const first = series?.[0];
  return first !== undefined && now.getTime() - first.thisUpdate.getTime() - BACKDATE_MS < ms;
}

export const seriesEnd = (series: readonly CrlInfo[]): Date | undefined => series[series.length - 1]?.nextUpdate;

/**
 * Puts the current member in root/crl.pem when another one is there; no key needed. Returns what
 * it did for the caller's report, or undefined when nothing changed. Caller holds the CA lock
 * and rebuilds the bundle when this returns a change.
 */
export async function installCurrentRootCrlLocked(store: CaStore, now = new Date()): Promise<string | undefined> {
  const series = await readRootCrlSeries(store);
  const i = series ? currentWindow(series, now) : undefined;
  if (!series || i === undefined) return undefined;
  const want = series[i]!;
  const installed = await readText(store.root().crl);
  const der = installed ? pemToDer(installed, 'X509 CRL')[0] : undefined;
  if (der?.equals(want.der)) return undefined;
  await writeAtomic(store.root().crl, derToPem(want.der, 'X509 CRL'), PUBLIC_MODE);
  return `root (window ${i + 1} of ${series.length}, until ${want.nextUpdate!.toISOString().slice(0, 10)})`;
}
