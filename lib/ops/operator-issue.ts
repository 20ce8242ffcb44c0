// Operator issuance (DESIGN §4.2): what the CLI's issue-node/-agent/-user, sign and renew do on
// the CA host — key made here (0600 from creation) or a CSR from elsewhere, one transaction each,
// through the one signing path (lib/ops/issue.ts signLeafLocked).
import fsp from 'node:fs/promises';
import { type Ca, issuerCert } from '../ca/handle.ts';
import { fileStem, type Identity } from '../core/identity.ts';
import { leafProfile } from '../sign/profile.ts';
import { leafValidity, type Validity } from '../sign/validity.ts';
import { revokeLocked, type RevokeTarget } from '../sign/revocation.ts';
import { parseCertPem, publicKeyDer, type CertInfo } from '../x509/cert.ts';
import { checkNameConstraints } from '../policy/name-constraints.ts';
import {
  createExclusive,
  KEY_MODE,
  PUBLIC_MODE,
  commitRename,
  tempPathFor,
  writeAtomic,
  readText,
} from '../sys/files.ts';
import { csrForKey, csrPublicKey, newKeyAndCsr } from '../sign/csr.ts';
import { publicKeyOfPrivatePem, type KeyType } from '../core/keys.ts';
import { audit } from '../sys/audit.ts';
import { sharedDetail } from '../policy/live-names.ts';
import { readDb, isLive } from '../ca/database.ts';
import { RivetError, UsageError } from '../core/errors.ts';
import type { San } from '../core/san.ts';
import { transaction } from '../sign/transaction.ts';
import { signLeafLocked, type Issued, type NameOverride } from './issue.ts';

/**
 * `sign`: an externally made CSR (it gives its key and nothing else), the certificate written to
 * `out` in the same lock hold as the signature, like every other change in the CA directory.
 */
export async function signCsrFor(
  ca: Ca,
  id: Identity,
  csrPem: string,
  sans: readonly San[],
  validity: Validity,
  out: string,
  override: NameOverride = {},
): Promise<Issued> {
  leafProfile(id, ca.domain, sans); // refuse a bad request before taking the lock
  const publicKey = await csrPublicKey(csrPem);
  return transaction(ca, `sign ${fileStem(id)}`, async () => {
    const issued = await signLeafLocked(ca, id, csrPem, publicKey, sans, validity, override);
    await writeAtomic(out, issued.certPem, PUBLIC_MODE);
    await audit(ca.store.auditLog, {
      event: 'sign',
      result: 'ok',
      cn: issued.cn,
      serial: issued.serial,
      detail: sharedDetail(issued.shared),
    });
    return issued;
  });
}

export type OperatorIssue = NameOverride & {
  sans?: readonly San[];
  keyType?: KeyType;
  validity?: Validity;
  /** Do nothing while a valid certificate with a matching key is in issued/. */
  ifMissing?: boolean;
  /** Replace a valid certificate that is already in issued/. */
  force?: boolean;
  event?: string;
};

export type OperatorResult =
  | (Issued & { certPath: string; keyPath: string })
  | { skipped: true; cn: string; serial: string; certPath: string; notAfter: Date };

/** The operator path: key made on the CA host, written to issued/<stem>.key (0600 from creation). */
export async function issueWithNewKey(ca: Ca, id: Identity, opts: OperatorIssue = {}): Promise<OperatorResult> {
  const stem = fileStem(id);
  const certPath = ca.store.issued(stem, 'crt');
  const keyPath = ca.store.issued(stem, 'key');
  const profile = leafProfile(id, ca.domain, opts.sans ?? []);
  const validity = opts.validity ?? leafValidity();
  // Fail fast, before making a key: no CA, or a name its intermediate may not certify.
  checkNameConstraints(await issuerCert(await ca.store.current()), profile.cn, profile);

  const existing = await usableIssued(ca, certPath, keyPath);
  if (existing && opts.ifMissing)
    return { skipped: true, cn: profile.cn, serial: existing.serial, certPath, notAfter: existing.notAfter };
  if (existing && !opts.force) {
    throw new UsageError(
      `${profile.cn} already has a valid certificate (serial ${existing.serial}, until ${existing.notAfter.toISOString().slice(0, 10)}) — use \`renew\`, \`--if-missing\`, or \`--force\` to replace it`,
      'exists',
    );
  }

  const tmpKey = tempPathFor(keyPath);
  await createExclusive(tmpKey, KEY_MODE);
  try {
    const { csrPem, publicKey } = await newKeyAndCsr(tmpKey, opts.keyType ?? 'ec-p256', profile);
    return await transaction(ca, `${opts.event ?? 'issue'} ${stem}`, async () => {
      const again = await usableIssued(ca, certPath, keyPath);
      if (again && opts.ifMissing)
        return { skipped: true as const, cn: profile.cn, serial: again.serial, certPath, notAfter: again.notAfter };
      // Another process may have issued this identity while our key was being made.
      if (again && !opts.force)
        throw new UsageError(
          `${profile.cn} was just issued by another run (serial ${again.serial}) — use \`--force\` to replace it`,
          'exists',
        );
      const issued = await signLeafLocked(ca, id, csrPem, publicKey, opts.sans ?? [], validity, opts);
      // Key before certificate: if we die in between, the pair no longer matches, which
      // usableIssued() notices, so --if-missing and renew repair it rather than trusting it.
      await commitRename(tmpKey, keyPath);
      await writeAtomic(certPath, issued.certPem, PUBLIC_MODE);
      await audit(ca.store.auditLog, {
        event: opts.event ?? 'issue',
        result: 'ok',
        cn: issued.cn,
        serial: issued.serial,
        detail: sharedDetail(issued.shared),
      });
      return { ...issued, certPath, keyPath };
    });
  } finally {
    await fsp.rm(tmpKey, { force: true });
  }
}

/**
 * Re-signs the key already in issued/ (renewal: the key stays, the certificate rotates). The
 * certificate it replaces stays valid until it expires; any other live certificate of the identity
 * is revoked as superseded, so renewing never leaves more than two (lib/policy/renewal.ts).
 */
export async function reissueWithSameKey(
  ca: Ca,
  id: Identity,
  sans: readonly San[],
  validity: Validity,
  event = 'renew',
  override: NameOverride = {},
): Promise<Issued & { certPath: string; superseded: string[] }> {
  const stem = fileStem(id);
  const keyPath = ca.store.issued(stem, 'key');
  const certPath = ca.store.issued(stem, 'crt');
  const keyPem = await readText(keyPath);
  if (keyPem === undefined)
    throw new RivetError(
      `no key for ${stem} in ${ca.store.issuedDir} — its holder renews it (provision-ct renew)`,
      'no_key',
    );
  const publicKey = publicKeyOfPrivatePem(keyPem);
  const profile = leafProfile(id, ca.domain, sans);
  const csrPem = await csrForKey(keyPath, profile);
  return transaction(ca, `${event} ${stem}`, async () => {
    const replaced = await readText(certPath).then(
      (pem) => (pem ? parseCertPem(pem).serial : undefined),
      () => undefined,
    );
    const issued = await signLeafLocked(ca, id, csrPem, publicKey, sans, validity, override);
    await writeAtomic(certPath, issued.certPem, PUBLIC_MODE);
    const older: RevokeTarget[] = [];
    for (const issuer of await ca.store.intermediates()) {
      for (const e of await readDb(issuer.dir))
        if (e.cn === issued.cn && isLive(e) && e.serial !== issued.serial && e.serial !== replaced)
          older.push({ issuer, serial: e.serial });
    }
    await revokeLocked(ca, older, 'superseded');
    await audit(ca.store.auditLog, {
      event,
      result: 'ok',
      cn: issued.cn,
      serial: issued.serial,
      ...(older.length ? { serials: older.map((o) => o.serial), reason: 'superseded' } : {}),
      detail: sharedDetail(issued.shared),
    });
    return { ...issued, certPath, superseded: older.map((o) => o.serial) };
  });
}

/** The certificate in issued/ if it is live in the database and its key matches; else undefined. */
export async function usableIssued(ca: Ca, certPath: string, keyPath: string): Promise<CertInfo | undefined> {
  const [certPem, keyPem] = await Promise.all([readText(certPath), readText(keyPath)]);
  if (!certPem || !keyPem) return undefined;
  let info: CertInfo;
  try {
    info = parseCertPem(certPem);
  } catch {
    return undefined;
  }
  try {
    if (!publicKeyDer(info.x509).equals(publicKeyDer(publicKeyOfPrivatePem(keyPem)))) return undefined;
  } catch {
    return undefined;
  }
  for (const issuer of await ca.store.intermediates()) {
    const row = (await readDb(issuer.dir)).find((e) => e.serial === info.serial);
    if (row) return isLive(row) ? info : undefined;
  }
  return undefined;
}
