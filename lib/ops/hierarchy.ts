// The CA certificates themselves (DESIGN §4.1): the root, made once ever, and the intermediate it
// signs. Each is assembled in a temp directory and renamed into place, so a crash leaves either
// no root (or intermediate) or a complete one.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import type { Ca } from '../ca/handle.ts';
import { issuerCert, type IssuerSecret } from '../ca/handle.ts';
import { openssl } from '../sys/openssl.ts';
import { renderFile } from '../sys/template.ts';
import { genpkeyArgs, digestFor, publicKeyOfPrivatePem, type KeyType } from '../core/keys.ts';
import { createExclusive, ensureDir, exists, KEY_MODE, PUBLIC_MODE, TEMP_MARK, writeAtomic, syncDir } from '../sys/files.ts';
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

export const ROOT_DAYS = 3650;
export const INTERMEDIATE_DAYS = 5 * 365;

async function stagingDir(parent: string, name: string): Promise<string> {
  const dir = path.join(parent, `${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}-${name}`);
  await ensureDir(dir);
  return dir;
}

/** Makes a key file (0600 from creation), optionally encrypted with a passphrase given by env. */
async function makeKey(file: string, type: KeyType, secret?: IssuerSecret): Promise<void> {
  await createExclusive(file, KEY_MODE);
  const enc = secret?.passphrase ? ['-aes-256-cbc', '-pass', 'env:RIVET_CA_KEY_PASS'] : [];
  await openssl(['genpkey', ...genpkeyArgs(type), ...enc, '-out', file], { env: secret?.passphrase ? { RIVET_CA_KEY_PASS: secret.passphrase } : {} });
}

/**
 * `pkcs11`: the root key already lives in a token (made there by the HSM's own tooling, e.g.
 * `pkcs11-tool --keypairgen`); init records where and signs the root certificate with it. The
 * PIN is `ca.root.passphrase`.
 */
export async function initRoot(ca: Ca, opts: { keyType?: KeyType; pkcs11?: Pkcs11Root } = {}): Promise<{ cert: X509Certificate; fingerprint: string }> {
  const { store } = ca;
  if (await store.hasRoot()) throw new UsageError(`a root already exists in ${store.dir} — init runs once, ever (see \`rivet-ca status\`)`, 'exists');
  await store.ensureLayout();
  return transaction(ca, 'init', async () => {
    if (await store.hasRoot()) throw new UsageError(`a root already exists in ${store.dir}`, 'exists');
    const keyType = opts.keyType ?? 'ec-p256';
    const stage = await stagingDir(store.dir, 'root');
    const key = path.join(stage, 'ca.key');
    if (opts.pkcs11) await writePkcs11(stage, opts.pkcs11);
    else await makeKey(key, keyType, ca.root);
    const pem = await withTempDir(async (tmp) => {
      const conf = path.join(tmp, 'root.cnf');
      await fsp.writeFile(conf, renderFile('root.cnf', {}));
      const k = await issuerKeyArgs({ ...store.root(), dir: stage, key }, ca.root, tmp, '-key');
      return openssl(['req', '-x509', '-new', '-config', conf, ...k.args, '-extensions', 'v3_root',
        '-days', String(ROOT_DAYS), '-set_serial', `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}`, `-${digestFor(keyType)}`], { env: k.env });
    });
    const info = parseCertPem(pem);
    // A token key cannot be read back: the certificate's self-signature (checked below against its
    // own public key) proves the token's key made it.
    const publicKey = opts.pkcs11 ? info.x509.publicKey : publicKeyOfPrivatePem(await fsp.readFile(key, 'utf8'), ca.root?.passphrase);
    checkIssued(info, { cn: 'Rivet Root CA', eku: [], ca: true, issuer: info.x509, publicKey, notBefore: info.notBefore, notAfter: new Date(info.notBefore.getTime() + ROOT_DAYS * DAY_MS) });
    if (info.pathLen !== undefined) throw new RivetError('root certificate must not carry a path length limit', 'check');
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
    throw new RivetError(`${what} needs the root key, which is offline — bring it back with \`rivet-ca root online --from DIR\`, then retry`, 'root_offline');
  }
  const problem = await rootUnattendedProblem(ca.store.rootDir, ca.root);
  if (problem) throw new UsageError(`${what} needs the root key, but ${problem}`, 'root_locked');
}

/**
 * Makes intermediate generation `generation` in a staging directory: key, certificate signed by
 * the root, empty database, first CRL. Returns the staging path; the caller renames it into place.
 */
export async function buildIntermediate(ca: Ca, generation: number, keyType: KeyType = 'ec-p256'): Promise<{ stage: string; cert: X509Certificate; serial: string }> {
  const { store } = ca;
  const root = store.root();
  await requireRootKey(ca, 'signing an intermediate');
  const rootX509 = await issuerCert(root);
  const stage = await stagingDir(store.dir, 'intermediate');
  const key = path.join(stage, 'int.key');
  await makeKey(key, keyType);
  const subject = `/O=Rivet Collective/CN=Rivet Intermediate CA ${generation}`;
  const csrPem = await withTempDir(async (tmp) => {
    const conf = path.join(tmp, 'int.cnf');
    await fsp.writeFile(conf, renderFile('intermediate.cnf', { generation }));
    return openssl(['req', '-new', '-config', conf, '-key', key]);
  });
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
  const rootEnd = new Date(rootX509.validTo);
  const notAfter = new Date(Math.min(notBefore.getTime() + INTERMEDIATE_DAYS * DAY_MS, rootEnd.getTime()));
  const pem = await signCsr(root, {
    csrPem, subject, extTemplate: 'intermediate.cnf', extSection: 'v3_intermediate', extValues: { generation },
    notBefore, notAfter, digest: 'sha256',
  }, ca.root);
  const info = parseCertPem(pem);
  checkIssued(info, { cn: `Rivet Intermediate CA ${generation}`, eku: [], ca: true, pathLen: 0, issuer: rootX509, publicKey: publicKeyOfPrivatePem(await fsp.readFile(key, 'utf8')), notBefore, notAfter });
  if (!info.subjectOrg.includes('Rivet Collective') || !info.extensions.some((e) => e.oid === OID.aki)) throw new RivetError('intermediate certificate lacks O or authorityKeyIdentifier', 'check');
  await initIssuerDb(stage);
  await writeAtomic(path.join(stage, 'int.crt'), pem, PUBLIC_MODE);
  await writeAtomic(path.join(stage, 'generation'), `${generation}\n`, PUBLIC_MODE);
  await signCrl(store.intermediateAt(stage, generation), INTERMEDIATE_CRL_HOURS);
  return { stage, cert: info.x509, serial: info.serial };
}

export async function issueIntermediate(ca: Ca): Promise<{ cert: X509Certificate; serial: string }> {
  const { store } = ca;
  if (!(await store.hasRoot())) throw new UsageError(`no root in ${store.dir} — run \`rivet-ca init\` first`, 'no_root');
  if (await exists(store.intermediateAt(store.intermediateDir, 1).cert)) {
    throw new UsageError(`an intermediate already exists in ${store.intermediateDir} — use \`rivet-ca rotate-intermediate\` to replace it`, 'exists');
  }
  await requireRootKey(ca, 'issue-intermediate');
  return transaction(ca, 'issue-intermediate', async () => {
    if (await exists(store.intermediateAt(store.intermediateDir, 1).cert)) throw new UsageError('an intermediate already exists', 'exists');
    const built = await buildIntermediate(ca, 1);
    await fsp.rmdir(store.intermediateDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw new RivetError(`${store.intermediateDir} holds files but no int.crt — move them aside, then retry`, 'exists');
    });
    await fsp.rename(built.stage, store.intermediateDir);
    await syncDir(store.dir);
    await writeChainLocked(ca);
    await refreshCrlsLocked(ca, { force: true });
    await audit(store.auditLog, { event: 'issue-intermediate', result: 'ok', cn: 'Rivet Intermediate CA 1', serial: built.serial });
    return { cert: built.cert, serial: built.serial };
  });
}
