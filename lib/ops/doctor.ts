// `status` / `doctor` (DESIGN §4.5, §4.6): what will break soon, each finding with its fix.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import { issuerCert } from '../ca/handle.ts';
import { exists } from '../sys/files.ts';
import { ownershipProblems } from '../sys/ownership.ts';
import { readPkcs11 } from '../sign/pkcs11.ts';
import { opensslVersion } from '../sys/openssl.ts';
import { crlSignedBy } from '../x509/crl.ts';
import { inventory } from './inventory.ts';
import { daysLeft } from '../core/duration.ts';
import { RENEW_WITHIN_MS } from './renew.ts';
import { readCrl, INTERMEDIATE_CRL_REFRESH_MS, ROOT_CRL_WARN_MS } from '../ca/published.ts';
import { currentWindow, readRootCrlSeries, seriesEnd } from '../sign/root-crl-series.ts';
import { describeNameConstraints } from '../policy/name-constraints.ts';
import { parseCertDer } from '../x509/cert.ts';
import type { X509Certificate } from 'node:crypto';
import { nodePushStatus, pushFindings } from './push-report.ts';

export type Finding = { level: 'ok' | 'warn' | 'fail'; what: string; fix?: string };

async function walkKeys(dir: string, out: string[] = []): Promise<string[]> {
  for (const ent of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) await walkKeys(p, out);
    else if (/\.(key|p12)$/.test(ent.name)) out.push(p);
  }
  return out;
}

export async function doctor(ca: Ca, now = new Date()): Promise<Finding[]> {
  const f: Finding[] = [];
  const { store } = ca;
  const v = await opensslVersion();
  f.push(
    v.major >= 3
      ? { level: 'ok', what: v.text }
      : { level: 'fail', what: `${v.text} is too old`, fix: 'install OpenSSL 3.0 or newer' },
  );
  // Everything below reads files another user could have written: say so first (DESIGN §8).
  const unsafe = ownershipProblems(store.dir);
  for (const p of unsafe.slice(0, 5))
    f.push({ level: 'fail', what: `${p.path} ${p.why} — another user could swap the CA's files`, fix: p.fix });
  if (unsafe.length > 5)
    f.push({
      level: 'fail',
      what: `${unsafe.length - 5} more file(s) in ${store.dir} with the same problem`,
      fix: unsafe[0]!.fix,
    });
  if (!(await store.hasRoot()))
    return [...f, { level: 'fail', what: `no CA in ${store.dir}`, fix: 'run `rivet-ca init` (or set RIVET_CA_DIR)' }];
  const root = store.root();
  const rootX = await issuerCert(root);
  const intermediates = await store.intermediates().catch(() => []);
  if (intermediates.length === 0)
    f.push({ level: 'fail', what: 'no intermediate', fix: 'run `rivet-ca issue-intermediate`' });
  if (intermediates.length && (await exists(root.key)))
    f.push({
      level: 'warn',
      what: 'root key is still on this host',
      fix: 'move it offline: `rivet-ca root offline --to DIR`',
    });
  const token = await readPkcs11(root.dir);
  if (token) f.push({ level: 'ok', what: `root key in PKCS#11 token ${token.uri}` });
  if (await store.pendingRotation())
    f.push({
      level: 'warn',
      what: 'an intermediate rotation was interrupted',
      fix: 'any change finishes it, e.g. `rivet-ca crl`',
    });
  f.push(...(await rootCrlFindings(ca, rootX, now)));
  for (const issuer of intermediates) {
    const x = await issuerCert(issuer);
    if (issuer === intermediates[0])
      f.push({
        level: 'ok',
        what: `intermediate ${issuer.generation}: ${describeNameConstraints(parseCertDer(Buffer.from(x.raw)))}`,
      });
    const from = new Date(x.validFrom).getTime();
    const to = new Date(x.validTo).getTime();
    const name = `intermediate ${issuer.generation}`;
    if (issuer === intermediates[0] && now.getTime() > from + (to - from) / 2)
      f.push({
        level: 'warn',
        what: `${name} is past half its life (until ${new Date(to).toISOString().slice(0, 10)})`,
        fix: 'run `rivet-ca rotate-intermediate`',
      });
    const crl = await readCrl(issuer.crl);
    if (!crl?.nextUpdate || !crlSignedBy(crl, x))
      f.push({ level: 'fail', what: `${name} CRL missing or badly signed`, fix: 'run `rivet-ca crl`' });
    else if (crl.nextUpdate.getTime() - now.getTime() < INTERMEDIATE_CRL_REFRESH_MS)
      f.push({
        level: crl.nextUpdate < now ? 'fail' : 'warn',
        what: `${name} CRL ${crl.nextUpdate < now ? 'lapsed' : 'lapses'} ${crl.nextUpdate.toISOString()}`,
        fix: 'run `rivet-ca crl` (or `make renew` daily)',
      });
    else f.push({ level: 'ok', what: `${name} CRL valid until ${crl.nextUpdate.toISOString()}` });
  }
  for (const key of await walkKeys(store.dir)) {
    const mode = (await fsp.stat(key)).mode & 0o777;
    if (mode !== 0o600) f.push({ level: 'fail', what: `${key} has mode ${mode.toString(8)}`, fix: `chmod 600 ${key}` });
  }
  const rows = await inventory(ca, now);
  const due = rows.filter(
    (r) =>
      r.status === 'valid' &&
      r.kind !== 'intermediate' &&
      new Date(r.notAfter).getTime() - now.getTime() < RENEW_WITHIN_MS,
  );
  if (due.length)
    f.push({
      level: 'warn',
      what: `${due.length} certificate(s) expire within 30 days: ${due
        .slice(0, 5)
        .map((r) => r.cn)
        .join(', ')}${due.length > 5 ? ', …' : ''}`,
      fix: 'run `make renew` (nodes renew themselves with provision-ct)',
    });
  if (intermediates.length) {
    try {
      f.push(...pushFindings(await nodePushStatus(ca, now), now));
    } catch (err) {
      f.push({ level: 'warn', what: `push status unreadable: ${(err as Error).message}` });
    }
  }
  f.push({
    level: 'ok',
    what: `${rows.filter((r) => r.status === 'valid').length} valid, ${rows.filter((r) => r.status === 'revoked').length} revoked, ${rows.filter((r) => r.status === 'expired').length} expired certificate(s)`,
  });
  return f;
}

/**
 * The published root CRL, and the series it comes from (lib/sign/root-crl-series.ts): warn 60 days
 * before the series ends — not before each window ends, since the next one is already signed.
 */
async function rootCrlFindings(ca: Ca, rootX: X509Certificate, now: Date): Promise<Finding[]> {
  const f: Finding[] = [];
  const ceremony = 'bring the root online and run `rivet-ca root crl` (it signs the next years)';
  const rootCrl = await readCrl(ca.store.root().crl);
  const series = await readRootCrlSeries(ca.store);
  const end = series ? seriesEnd(series) : rootCrl?.nextUpdate;
  const current = series ? currentWindow(series, now) : undefined;
  if (!rootCrl?.nextUpdate || !crlSignedBy(rootCrl, rootX))
    f.push({
      level: 'fail',
      what: 'root CRL missing or not signed by the root',
      fix: 'run `rivet-ca root crl` with the root online',
    });
  else if (series && current !== undefined && !series[current]!.der.equals(rootCrl.der))
    f.push({
      level: rootCrl.nextUpdate < now ? 'fail' : 'warn',
      what: `root CRL window ${current + 1} of ${series.length} has started but crl.pem still carries an older one (until ${rootCrl.nextUpdate.toISOString().slice(0, 10)})`,
      fix: 'run `rivet-ca crl` (`make renew` and serve do this daily)',
    });
  else if (rootCrl.nextUpdate.getTime() - now.getTime() < ROOT_CRL_WARN_MS)
    f.push({
      level: rootCrl.nextUpdate < now ? 'fail' : 'warn',
      what: `root CRL lapses ${rootCrl.nextUpdate.toISOString()} (${daysLeft(rootCrl.nextUpdate, now)} days)`,
      fix: ceremony,
    });
  else
    f.push({
      level: 'ok',
      what: `root CRL valid until ${rootCrl.nextUpdate.toISOString().slice(0, 10)}${series && current !== undefined ? ` (window ${current + 1} of ${series.length})` : ''}`,
    });
  if (series && series.length > 1 && end) {
    if (end.getTime() - now.getTime() < ROOT_CRL_WARN_MS)
      f.push({
        level: end < now ? 'fail' : 'warn',
        what: `root CRL series ends ${end.toISOString()} (${daysLeft(end, now)} days)`,
        fix: ceremony,
      });
    else f.push({ level: 'ok', what: `root CRL series signed until ${end.toISOString().slice(0, 10)}` });
  }
  return f;
}

export async function rootFingerprint(ca: Ca): Promise<string> {
  const x = await issuerCert(ca.store.root());
  return `sha256:${x.fingerprint256.replace(/:/g, '').toLowerCase()}`;
}
