// The CA certificates themselves (DESIGN §4.1): the root, made once ever, and the intermediate it
// signs. Each is assembled in a temp directory and renamed into place, so a crash leaves either
// no root (or intermediate) or a complete one.
// Length (over 250 lines once formatted): root and intermediate share the assemble-in-temp-then-
// rename protocol, the PKCS#11 root path and the back-dating rules; they read best side by side.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import type { Ca } from '../ca/handle.ts';
import type { Issuer } from '../ca/store.ts';
import { issuerCert, type IssuerSecret } from '../ca/handle.ts';
import { openssl } from '../sys/openssl.ts';
import { renderFile } from '../sys/template.ts';
import { genpkeyArgs, digestFor, publicKeyOfPrivatePem, type KeyType } from '../core/keys.ts';
import { generalizedTime } from '../x509/time.ts';
import {
  createExclusive,
  ensureDir,
  exists,
  KEY_MODE,
  PUBLIC_MODE,
  TEMP_MARK,
  writeAtomic,
  syncDir,
} from '../sys/files.ts';
import { initIssuerDb, issuerKeyArgs, signCsr, withTempDir } from '../sign/signer.ts';
import { rootKeyAvailable, rootUnattendedProblem, writePkcs11, type Pkcs11Root } from '../sign/pkcs11.ts';
import { parseCertPem } from '../x509/cert.ts';
import { checkIssued } from '../x509/leaf-check.ts';
import { refreshCrlsLocked, signCrl } from '../sign/crl-sign.ts';
import { audit } from '../sys/audit.ts';
import { OID } from '../x509/cert.ts';
import { DAY_MS } from '../core/duration.ts';
import { RivetError, UsageError } from '../core/errors.ts';
import { writeChainLocked, INTERMEDIATE_CRL_HOURS } from '../ca/published.ts';
import { transaction } from '../sign/transaction.ts';
import {
  DEFAULT_NAME_CONSTRAINTS,
  nameConstraintProfile,
  writeNameConstraintChoice,
  type NameConstraintChoice,
} from '../policy/name-constraints.ts';
import { nameConstraintsOf } from '../x509/name-constraints.ts';
import { DEFAULT_SAN_CIDRS, parseCidrs, type Cidr } from '../core/san.ts';

export const ROOT_DAYS = 3650;
export const INTERMEDIATE_DAYS = 5 * 365;

async function stagingDir(parent: string, name: string): Promise<string> {
  const dir = path.join(parent, `${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}-${name}`);
  await ensureDir(dir);
  return dir;
}

/** CA certificates start 5 minutes back like CRLs and leaves (DESIGN §3): peers' clocks drift. */
const BACKDATE_MS = 5 * 60_000;
const backdated = (now: Date, floor?: Date) =>
  new Date(Math.max(Math.floor((now.getTime() - BACKDATE_MS) / 1000) * 1000, floor?.getTime() ?? 0));

/**
 * The self-signed root, dated by us: `openssl req -x509` in OpenSSL 3.0 has no start date, so the
 * root's own CSR is signed by `openssl ca -selfsign -startdate` in a scratch database (the root is
 * not a row of its own database). The key is reached as for every root signature (file or token).
 */
async function selfSignRoot(
  root: Issuer,
  secret: IssuerSecret | undefined,
  digest: string,
  notBefore: Date,
  notAfter: Date,
): Promise<string> {
  return withTempDir(async (tmp) => {
    const conf = path.join(tmp, 'root.cnf');
    const caConf = path.join(tmp, 'ca.cnf');
    await fsp.writeFile(conf, renderFile('root.cnf', {}));
    await fsp.writeFile(caConf, renderFile('ca.cnf', { digest, copy_extensions: 'none' }));
    await initIssuerDb(tmp);
    const reqKey = await issuerKeyArgs(root, secret, tmp, '-key');
    const csr = path.join(tmp, 'root.csr');
    await openssl(['req', '-new', '-config', conf, ...reqKey.args, `-${digest}`, '-out', csr], { env: reqKey.env });
    const caKey = await issuerKeyArgs(root, secret, tmp);
    const out = path.join(tmp, 'ca.crt');
    await openssl(
      [
        'ca',
        '-batch',
        '-selfsign',
        '-notext',
        '-config',
        caConf,
        '-extfile',
        conf,
        '-extensions',
        'v3_root',
        ...caKey.args,
        '-rand_serial',
        '-md',
        digest,
        '-startdate',
        generalizedTime(notBefore),
        '-enddate',
        generalizedTime(notAfter),
        '-subj',
        '/O=Rivet Collective/CN=Rivet Root CA',
        '-in',
        csr,
        '-out',
        out,
      ],
      { cwd: tmp, env: caKey.env },
    );
    return fsp.readFile(out, 'utf8');
  });
}

/** Makes a key file (0600 from creation), optionally encrypted with a passphrase given by env. */
async function makeKey(file: string, type: KeyType, secret?: IssuerSecret): Promise<void> {
  await createExclusive(file, KEY_MODE);
  const enc = secret?.passphrase ? ['-aes-256-cbc', '-pass', 'env:RIVET_CA_KEY_PASS'] : [];
  await openssl(['genpkey', ...genpkeyArgs(type), ...enc, '-out', file], {
    env: secret?.passphrase ? { RIVET_CA_KEY_PASS: secret.passphrase } : {},
  });
}

/**
 * `pkcs11`: the root key already lives in a token (made there by the HSM's own tooling, e.g.
 * `pkcs11-tool --keypairgen`); init records where and signs the root certificate with it. The
 * PIN is `ca.root.passphrase`.
 */
export async function initRoot(
  ca: Ca,
  opts: { keyType?: KeyType; pkcs11?: Pkcs11Root } = {},
): Promise<{ cert: X509Certificate; fingerprint: string }> {
  const { store } = ca;
  if (await store.hasRoot())
    throw new UsageError(
      `a root already exists in ${store.dir} — init runs once, ever (see \`rivet-ca status\`)`,
      'exists',
    );
  await store.ensureLayout();
  return transaction(ca, 'init', async () => {
    if (await store.hasRoot()) throw new UsageError(`a root already exists in ${store.dir}`, 'exists');
    const keyType = opts.keyType ?? 'ec-p256';
    const stage = await stagingDir(store.dir, 'root');
    const key = path.join(stage, 'ca.key');
    if (opts.pkcs11) await writePkcs11(stage, opts.pkcs11);
    else await makeKey(key, keyType, ca.root);
    const notBefore = backdated(new Date());
    const notAfter = new Date(notBefore.getTime() + ROOT_DAYS * DAY_MS);
    const pem = await selfSignRoot(
      { ...store.root(), dir: stage, key },
      ca.root,
      digestFor(keyType),
      notBefore,
      notAfter,
    );
    const info = parseCertPem(pem);
    // A token key cannot be read back: the certificate's self-signature (checked below against its
    // own public key) proves the token's key made it.
    const publicKey = opts.pkcs11
      ? info.x509.publicKey
      : publicKeyOfPrivatePem(await fsp.readFile(key, 'utf8'), ca.root?.passphrase);
    checkIssued(info, { cn: 'Rivet Root CA', eku: [], ca: true, issuer: info.x509, publicKey, notBefore, notAfter });
    if (info.pathLen !== undefined)
      throw new RivetError('root certificate must not carry a path length limit', 'check');
    await initIssuerDb(stage);
    await writeAtomic(path.join(stage, 'ca.crt'), pem, PUBLIC_MODE);
    await fsp.rename(stage, store.rootDir);
    await syncDir(store.dir);
    await audit(store.auditLog, { event: 'init', result: 'ok', cn: 'Rivet Root CA', serial: info.serial });
    return { cert: info.x509, fingerprint: info.fingerprint256 };
  });
}

/**
 * Refuses, naming the ceremony, when the root key is not on this host — or when it is encrypted
 * or in a token and no passphrase/PIN was given (openssl would otherwise wait for a prompt).
 */
export async function requireRootKey(ca: Ca, what: string): Promise<void> {
  if (!(await rootKeyAvailable(ca.store.rootDir))) {
    throw new RivetError(
      `${what} needs the root key, which is offline — bring it back with \`rivet-ca root online --from DIR\`, then retry`,
      'root_offline',
    );
  }
  const problem = await rootUnattendedProblem(ca.store.rootDir, ca.root);
  if (problem) throw new UsageError(`${what} needs the root key, but ${problem}`, 'root_locked');
}

/**
 * Makes intermediate generation `generation` in a staging directory: key, certificate signed by
 * the root, empty database, first CRL. Returns the staging path; the caller renames it into place.
 */
/** How an intermediate is made: its key type, and its name constraints (lib/policy/name-constraints.ts). */
export type IntermediateOptions = { keyType?: KeyType; names?: NameConstraintChoice; sanCidrs?: readonly Cidr[] };

export async function buildIntermediate(
  ca: Ca,
  generation: number,
  opts: IntermediateOptions = {},
): Promise<{ stage: string; cert: X509Certificate; serial: string }> {
  const { store } = ca;
  const root = store.root();
  await requireRootKey(ca, 'signing an intermediate');
  const rootX509 = await issuerCert(root);
  const stage = await stagingDir(store.dir, 'intermediate');
  const key = path.join(stage, 'int.key');
  await makeKey(key, opts.keyType ?? 'ec-p256');
  const names = opts.names ?? DEFAULT_NAME_CONSTRAINTS;
  const nc = nameConstraintProfile(names, ca.domain, opts.sanCidrs ?? parseCidrs(DEFAULT_SAN_CIDRS));
  const values = { generation, domain: ca.domain, ...nc.values };
  const subject = `/O=Rivet Collective/CN=Rivet Intermediate CA ${generation}`;
  const csrPem = await withTempDir(async (tmp) => {
    const conf = path.join(tmp, 'int.cnf');
    await fsp.writeFile(conf, renderFile('intermediate.cnf', values));
    return openssl(['req', '-new', '-config', conf, '-key', key]);
  });
  const notBefore = backdated(new Date(), new Date(rootX509.validFrom)); // never before the root
  const rootEnd = new Date(rootX509.validTo);
  const notAfter = new Date(Math.min(notBefore.getTime() + INTERMEDIATE_DAYS * DAY_MS, rootEnd.getTime()));
  const pem = await signCsr(
    root,
    {
      csrPem,
      subject,
      extTemplate: 'intermediate.cnf',
      extSection: nc.section,
      extValues: values,
      notBefore,
      notAfter,
      digest: 'sha256',
    },
    ca.root,
  );
  const info = parseCertPem(pem);
  checkIssued(info, {
    cn: `Rivet Intermediate CA ${generation}`,
    uris: [`spiffe://${ca.domain}`],
    eku: [],
    ca: true,
    pathLen: 0,
    issuer: rootX509,
    publicKey: publicKeyOfPrivatePem(await fsp.readFile(key, 'utf8')),
    notBefore,
    notAfter,
  });
  if (!info.subjectOrg.includes('Rivet Collective') || !info.extensions.some((e) => e.oid === OID.aki))
    throw new RivetError('intermediate certificate lacks O or authorityKeyIdentifier', 'check');
  if (names.constrained !== (nameConstraintsOf(info)?.critical === true))
    throw new RivetError(
      `intermediate certificate ${names.constrained ? 'lacks critical' : 'carries'} name constraints`,
      'check',
    );
  await initIssuerDb(stage);
  await writeNameConstraintChoice(stage, names);
  await writeAtomic(path.join(stage, 'int.crt'), pem, PUBLIC_MODE);
  await writeAtomic(path.join(stage, 'generation'), `${generation}\n`, PUBLIC_MODE);
  await signCrl(store.intermediateAt(stage, generation), INTERMEDIATE_CRL_HOURS);
  return { stage, cert: info.x509, serial: info.serial };
}

export async function issueIntermediate(
  ca: Ca,
  opts: Omit<IntermediateOptions, 'keyType'> = {},
): Promise<{ cert: X509Certificate; serial: string }> {
  const { store } = ca;
  if (!(await store.hasRoot()))
    throw new UsageError(`no root in ${store.dir} — run \`rivet-ca init\` first`, 'no_root');
  if (await exists(store.intermediateAt(store.intermediateDir, 1).cert)) {
    throw new UsageError(
      `an intermediate already exists in ${store.intermediateDir} — use \`rivet-ca rotate-intermediate\` to replace it`,
      'exists',
    );
  }
  await requireRootKey(ca, 'issue-intermediate');
  return transaction(ca, 'issue-intermediate', async () => {
    if (await exists(store.intermediateAt(store.intermediateDir, 1).cert))
      throw new UsageError('an intermediate already exists', 'exists');
    const built = await buildIntermediate(ca, 1, opts);
    await fsp.rmdir(store.intermediateDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT')
        throw new RivetError(
          `${store.intermediateDir} holds files but no int.crt — move them aside, then retry`,
          'exists',
        );
    });
    await fsp.rename(built.stage, store.intermediateDir);
    await syncDir(store.dir);
    await writeChainLocked(ca);
    await refreshCrlsLocked(ca, { force: true });
    await audit(store.auditLog, {
      event: 'issue-intermediate',
      result: 'ok',
      cn: 'Rivet Intermediate CA 1',
      serial: built.serial,
    });
    return { cert: built.cert, serial: built.serial };
  });
}
