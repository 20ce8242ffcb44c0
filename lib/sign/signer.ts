// `openssl ca` for one issuer: sign a CSR under a profile, revoke a serial, generate a CRL. Runs in
// the issuer's directory (ca.cnf uses relative paths) with configs rendered to a private temp dir.
// Length (over 250 lines once formatted): every `openssl ca` invocation (sign, batch, revoke,
// CRL) in one place, so the config rendering and argument rules are visibly the same for all.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openssl, opensslEach } from '../sys/openssl.ts';
import { renderFile, type TemplateValues } from '../sys/template.ts';
import type { Issuer } from '../ca/store.ts';
import { generalizedTime, utcTime } from '../x509/time.ts';
import { writeAtomic } from '../sys/files.ts';
import { serialOf } from '../x509/serial.ts';
import { engineKeyArgs, readPkcs11 } from './pkcs11.ts';
import { RivetError } from '../core/errors.ts';
import { derToPem, pemToDer } from '../x509/der.ts';
import { X509Certificate } from 'node:crypto';

import type { IssuerSecret } from '../ca/handle.ts';

/** `-passin` arguments and environment for an issuer key that may be encrypted. */
/**
 * How openssl reaches an issuer's key: its key file (with -passin when encrypted), or, for a root
 * whose key lives in a PKCS#11 token, the pkcs11 engine (the secret is then the token PIN).
 */
export async function issuerKeyArgs(
  issuer: Issuer,
  secret: IssuerSecret | undefined,
  tmp: string,
  flag: '-key' | '-keyfile' = '-keyfile',
): Promise<{ args: string[]; env: Record<string, string> }> {
  const token = issuer.kind === 'root' ? await readPkcs11(issuer.dir) : undefined;
  if (token) return engineKeyArgs(token, flag, tmp, secret?.passphrase);
  const pass = passinFor(secret);
  return { args: [flag, issuer.key, ...pass.args], env: pass.env };
}

export function passinFor(secret: IssuerSecret | undefined): { args: string[]; env: Record<string, string> } {
  if (!secret?.passphrase) return { args: [], env: {} };
  return { args: ['-passin', 'env:RIVET_CA_KEY_PASS'], env: { RIVET_CA_KEY_PASS: secret.passphrase } };
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rivet-ca-'));
  try {
    return await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/**
 * The CSR text handed to openssl: the one CERTIFICATE REQUEST block re-armoured from its DER and
 * nothing else, so openssl reads exactly the bytes that were checked. (openssl would also take a
 * "NEW CERTIFICATE REQUEST" block, or the first of several, from the text as sent.)
 */
function csrForOpenssl(pem: string): string {
  const ders = pemToDer(pem, 'CERTIFICATE REQUEST');
  if (ders.length !== 1)
    throw new RivetError(`expected exactly one PEM "CERTIFICATE REQUEST", found ${ders.length}`, 'bad_csr');
  return derToPem(ders[0]!, 'CERTIFICATE REQUEST');
}

export type SignRequest = {
  csrPem: string;
  /** openssl -subj form, built from validated values only, e.g. `/CN=opus@ct111`. */
  subject: string;
  extTemplate: string;
  extSection: string;
  extValues: TemplateValues;
  notBefore: Date;
  notAfter: Date;
  digest: string;
};

/** What a signing run takes besides its requests: profile template, validity, digest. */
type SignProfile = Omit<SignRequest, 'csrPem' | 'subject'>;

/** Signs one CSR; returns the certificate PEM. The caller holds the CA lock. */
export async function signCsr(issuer: Issuer, req: SignRequest, secret?: IssuerSecret): Promise<string> {
  return withTempDir(async (tmp) => {
    const csr = path.join(tmp, 'req.csr');
    const out = path.join(tmp, 'cert.pem');
    await fsp.writeFile(csr, csrForOpenssl(req.csrPem));
    const ca = await caCommand(issuer, req, 'none', tmp, secret);
    await openssl(ca.args(['-subj', req.subject, '-in', csr, '-out', out]), { cwd: issuer.dir, env: ca.env });
    return fsp.readFile(out, 'utf8');
  });
}

/**
 * `openssl ca` signing under a profile, with `copy_extensions` as given: `args(input)` is its
 * argument list for the request(s) and output in `input`. Configs and key arguments go in `tmp`;
 * it runs with `env` in the issuer's directory. `-rand_serial`: a fresh 159-bit random serial
 * (DESIGN §3 asks at least 64 random bits) for the first certificate of a run.
 */
async function caCommand(
  issuer: Issuer,
  req: SignProfile,
  copyExtensions: 'none' | 'copy',
  tmp: string,
  secret?: IssuerSecret,
): Promise<{ args: (input: string[]) => string[]; env: Record<string, string> }> {
  const caConf = path.join(tmp, 'ca.cnf');
  const extConf = path.join(tmp, 'ext.cnf');
  await fsp.writeFile(caConf, renderFile('ca.cnf', { digest: req.digest, copy_extensions: copyExtensions }));
  await fsp.writeFile(extConf, renderFile(req.extTemplate, req.extValues));
  const key = await issuerKeyArgs(issuer, secret, tmp);
  const args = (input: string[]) => [
    'ca',
    '-batch',
    '-notext',
    '-config',
    caConf,
    '-extfile',
    extConf,
    '-extensions',
    req.extSection,
    '-cert',
    issuer.cert,
    ...key.args,
    '-rand_serial',
    '-md',
    req.digest,
    '-startdate',
    generalizedTime(req.notBefore),
    '-enddate',
    generalizedTime(req.notAfter),
    ...input,
  ];
  return { args, env: key.env };
}

export type BatchSignRequest = SignProfile & { csrPems: readonly string[] };

/**
 * Signs several CSRs under one profile, one `openssl ca` run each, all started by one xargs (no
 * fork of this process per certificate). Not one `-infiles` run: openssl numbers the certificates
 * of a run consecutively from its one random serial (`-rand_serial` and `rand_serial = yes`
 * alike, OpenSSL 3.0 apps/ca.c), and every certificate must have a serial of its own drawn at
 * random (DESIGN §3; test/serials.test.ts). The runs go one after another (xargs -P 1): openssl
 * ca does not lock its database, and each run commits as a single signCsr does, so a kill between
 * two runs leaves what a kill after one signCsr leaves (lib/ca/recovery.ts).
 * One config serves every certificate, so the per-request parts come from the CSRs: the subject
 * (policy_cn keeps the CN alone) and, by copy_extensions = copy, the SAN. The caller has checked
 * every CSR with csrProfileMismatch (its subject and SAN are byte for byte the profile's, nothing
 * else requested) and renders extValues with leafExtValues(p, 'csr'), and checks every
 * certificate with checkIssued afterwards. Returns the certificates openssl issued, which may be
 * fewer than the requests (a run that failed writes none). The caller holds the lock on
 * `issuer.dir`, or it is a private scratch database.
 */
export async function signCsrBatch(issuer: Issuer, req: BatchSignRequest, secret?: IssuerSecret): Promise<string[]> {
  if (req.csrPems.length === 0) return [];
  return withTempDir(async (tmp) => {
    const ca = await caCommand(issuer, req, 'copy', tmp, secret);
    const runs = await Promise.all(
      req.csrPems.map(async (pem, i) => {
        const csr = path.join(tmp, `req${i}.csr`);
        await fsp.writeFile(csr, csrForOpenssl(pem));
        return {
          argv: ca.args(['-in', csr, '-out', path.join(tmp, `cert${i}.pem`)]),
          out: path.join(tmp, `cert${i}.pem`),
        };
      }),
    );
    await opensslEach(
      runs.map((r) => r.argv),
      1,
      { cwd: issuer.dir, env: ca.env },
    );
    // A run openssl refused (a bad signature, its policy) wrote nothing: the caller matches what
    // came back by key and CN and signs a missing one alone, which reports openssl's error.
    const pems = await Promise.all(runs.map((r) => fsp.readFile(r.out, 'utf8').catch(() => '')));
    return pems
      .flatMap((text) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [])
      .map((p) => (p.endsWith('\n') ? p : `${p}\n`));
  });
}

// No `removeFromCRL`: RFC 5280 §5.3.1 allows it only in delta CRLs, and OpenSSL (so Node's tls)
// treats a full-CRL entry with that reason as *not revoked* — the database would say revoked while
// every handshake still accepted the certificate.
export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'CACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/**
 * Revokes `serials` in the issuer's database in one atomic write of index.txt: each row becomes
 * what `openssl ca -revoke` itself writes (status R, the revocation time as UTCTime, ",<reason>"),
 * so the next `openssl ca -gencrl` lists them all. One file write for any number of serials instead
 * of one openssl process (and one full rewrite of index.txt) per serial: revoking an identity that
 * held 2,000 certificates held the CA lock 43 s that way (issue 14). The write is temp file + fsync
 * + rename, so a kill leaves the database before or after, never torn; the caller wraps this and
 * the CRL in withCrlPending, which re-signs the CRL after a kill in between. Serials not live in
 * the database are returned, untouched. The caller holds the CA lock.
 */
export async function revokeSerials(
  issuer: Issuer,
  serials: readonly string[],
  reason: RevocationReason,
  at = new Date(),
): Promise<string[]> {
  if (serials.length === 0) return [];
  const index = path.join(issuer.dir, 'index.txt');
  const text = await fsp.readFile(index, 'utf8');
  const wanted = new Set(serials.map((x) => serialOf(x) as string));
  const done = new Set<string>();
  const revokedAt = `${utcTime(at)},${reason}`;
  const lines = text.split('\n').map((line) => {
    const f = line.split('\t');
    const serial = f[3] === undefined ? undefined : serialOf(f[3]);
    if (f.length !== 6 || f[0] !== 'V' || !serial || !wanted.has(serial) || done.has(serial)) return line;
    done.add(serial);
    return ['R', f[1], revokedAt, f[3], f[4], f[5]].join('\t');
  });
  if (done.size) await writeAtomic(index, lines.join('\n'), 0o600);
  return [...wanted].filter((x) => !done.has(x));
}

/**
 * One serial: revokeSerials for a list of one. `_secret` is accepted for callers of the former
 * `openssl ca -revoke` path; the database write needs no issuer key (the CRL signature does).
 */
export async function revokeSerial(
  issuer: Issuer,
  serial: string,
  reason: RevocationReason,
  _secret?: IssuerSecret,
): Promise<void> {
  const missed = await revokeSerials(issuer, [serial], reason);
  if (missed.length)
    throw new RivetError(`serial ${serial} is not a valid entry of ${path.join(issuer.dir, 'index.txt')}`, 'not_found');
}

/**
 * CRLs start this far back, like leaves (DESIGN §3): OpenSSL checks a CRL's thisUpdate with no
 * leeway, so a node whose clock is behind the CA's would fail every handshake (CRL_NOT_YET_VALID)
 * with a CRL dated "now" by the CA. nextUpdate still counts from the signing time.
 */
export const CRL_BACKDATE_MS = 5 * 60_000;

/** thisUpdate for a CRL signed at `now`: back-dated, but never before the issuer's own notBefore. */
export function crlThisUpdate(issuerNotBefore: Date, now = new Date()): Date {
  const back = Math.floor((now.getTime() - CRL_BACKDATE_MS) / 1000) * 1000;
  return new Date(Math.max(back, issuerNotBefore.getTime()));
}

/** A CRL for the issuer with exactly this validity window; returns its PEM. Bumps crlnumber. */
export async function signCrlWindow(
  issuer: Issuer,
  w: { thisUpdate: Date; nextUpdate: Date },
  digest: string,
  secret?: IssuerSecret,
): Promise<string> {
  return withTempDir(async (tmp) => {
    const caConf = path.join(tmp, 'ca.cnf');
    const out = path.join(tmp, 'crl.pem');
    await fsp.writeFile(caConf, renderFile('ca.cnf', { digest, copy_extensions: 'none' }));
    const key = await issuerKeyArgs(issuer, secret, tmp);
    await openssl(
      [
        'ca',
        '-batch',
        '-gencrl',
        '-config',
        caConf,
        '-cert',
        issuer.cert,
        ...key.args,
        '-md',
        digest,
        '-crl_lastupdate',
        generalizedTime(w.thisUpdate),
        '-crl_nextupdate',
        generalizedTime(w.nextUpdate),
        '-out',
        out,
      ],
      { cwd: issuer.dir, env: key.env },
    );
    return fsp.readFile(out, 'utf8');
  });
}

/** A fresh CRL for the issuer, back-dated (crlThisUpdate), valid for `hours` from now. */
export async function generateCrl(
  issuer: Issuer,
  hours: number,
  digest: string,
  secret?: IssuerSecret,
): Promise<string> {
  const issuerNotBefore = new Date(new X509Certificate(await fsp.readFile(issuer.cert)).validFrom);
  const now = Date.now();
  const nextUpdate = new Date(Math.floor(now / 1000) * 1000 + hours * 3_600_000);
  return signCrlWindow(
    issuer,
    { thisUpdate: crlThisUpdate(issuerNotBefore, new Date(now)), nextUpdate },
    digest,
    secret,
  );
}

/** Files an issuer directory needs before its first `openssl ca` run. */
export async function initIssuerDb(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, 'newcerts'), { recursive: true, mode: 0o700 });
  await fsp.writeFile(path.join(dir, 'index.txt'), '', { flag: 'wx', mode: 0o600 });
  await fsp.writeFile(path.join(dir, 'index.txt.attr'), 'unique_subject = no\n', { flag: 'wx', mode: 0o600 });
  await fsp.writeFile(path.join(dir, 'crlnumber'), '1000\n', { flag: 'wx', mode: 0o600 });
}
