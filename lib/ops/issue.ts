// The one signing path for leaf certificates (DESIGN §4.2): every CSR — the service's, `sign`'s, the
// operator's own (lib/ops/operator-issue.ts), the roster's — is checked against names, constraints
// and the profile, signed alone or in a group, and read back. The CA lock is held only around
// signing and the database write; keys and CSRs are made before it.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { type Ca, issuerCert } from '../ca/handle.ts';
import { type Identity } from '../core/identity.ts';
import { leafExtValues, leafProfile } from '../sign/profile.ts';
import { withinIssuer, type Validity } from '../sign/validity.ts';
import { signCsr, signCsrBatch } from '../sign/signer.ts';
import { revokeLocked } from '../sign/revocation.ts';
import { parseCertPem, publicKeyDer, type CertInfo } from '../x509/cert.ts';
import { checkNameConstraints } from '../policy/name-constraints.ts';
import { checkIssued } from '../x509/leaf-check.ts';
import { csrProfileMismatch } from '../sign/csr.ts';
import { digestForKey } from '../core/keys.ts';
import { auditAll } from '../sys/audit.ts';
import { checkNodeNamesLocked } from '../policy/live-names.ts';
import type { NameConflict } from '../policy/name-ownership.ts';
import { readDb, type ScratchRecord } from '../ca/database.ts';
import type { Serial } from '../x509/serial.ts';
import { RivetError } from '../core/errors.ts';
import type { San } from '../core/san.ts';
import type { Issuer } from '../ca/store.ts';

export type Issued = { cn: string; serial: Serial; certPem: string; info: CertInfo; issuer: Issuer };

/** The operator's explicit override of name ownership (`--allow-shared-name`); the service never sets it. */
export type NameOverride = { allowSharedName?: boolean };

/**
 * Signs a CSR's public key for `id` with the current intermediate, checks the result against the
 * request, and returns it with the intermediate appended, and with the names it shares with other
 * live nodes when the operator allowed that. Caller holds the CA lock.
 */
export async function signLeafLocked(
  ca: Ca,
  id: Identity,
  csrPem: string,
  publicKey: KeyObject,
  sans: readonly San[],
  validity: Validity,
  override: NameOverride = {},
): Promise<Issued & { shared: NameConflict[] }> {
  const shared =
    id.kind === 'node'
      ? await checkNodeNamesLocked(ca, id.nodeId, leafProfile(id, ca.domain, sans), {
          allowShared: override.allowSharedName,
        })
      : [];
  const [issued] = await signLeaves(ca, await ca.store.current(), [{ id, csrPem, publicKey, sans }], validity);
  if (issued instanceof Error) throw issued;
  return { ...issued!, shared };
}

export type LeafRequest = { id: Identity; csrPem: string; publicKey: KeyObject; sans: readonly San[] };
export type ScratchIssued = Issued & ScratchRecord;

/**
 * Signs several leaves with `issuer`'s key into the database in `issuer.dir`, results in request
 * order, an Error for each that failed. Requests whose CSR carries exactly the profile's subject
 * and SAN (csrProfileMismatch: our own CSRs and provision-ct's) are signed together under one
 * config per profile and digest (signCsrBatch); any other CSR gets its own run. What a shared run
 * returns is matched to its requests by public key and CN; a request it skipped is signed alone.
 * Each certificate is checked against its request. One that openssl recorded but that fails its
 * check (or matches no request) is never handed out; in the live database it is revoked at once
 * (voidRecordedLocked), so it never counts as anyone's live certificate.
 * The caller holds the CA lock (`live`), or `issuer.dir` is a scratch database (signLeavesScratch);
 * either way it has checked names (checkNodeNamesLocked) and ruled out two requests of one call
 * claiming the same identity or DNS name.
 */
export async function signLeaves(
  ca: Ca,
  issuer: Issuer,
  requests: readonly LeafRequest[],
  asked: Validity,
  live = true,
): Promise<Array<Issued | Error>> {
  const issuerX509 = await issuerCert(issuer);
  const validity = withinIssuer(issuerX509, asked);
  const profiles = requests.map((r) => leafProfile(r.id, ca.domain, r.sans));
  const pems: Array<string | Error | undefined> = new Array(requests.length);
  // A name outside the issuer's name constraints would make a certificate every verifier refuses.
  profiles.forEach((p, i) => {
    try {
      checkNameConstraints(issuerX509, p.cn, p);
    } catch (err) {
      pems[i] = err as Error;
    }
  });
  const strays: string[] = [];
  const shared = new Map<string, number[]>();
  requests.forEach((r, i) => {
    if (pems[i] !== undefined || csrProfileMismatch(r.csrPem, profiles[i]!) !== undefined) return;
    const key = `${profiles[i]!.template} ${digestForKey(r.publicKey)}`;
    shared.set(key, [...(shared.get(key) ?? []), i]);
  });
  for (const group of shared.values()) {
    if (group.length < 2) continue; // alone, it takes the ordinary path below
    const first = group[0]!;
    let signed: string[];
    try {
      signed = await signCsrBatch(issuer, {
        csrPems: group.map((i) => requests[i]!.csrPem),
        extTemplate: profiles[first]!.template,
        extSection: 'leaf',
        extValues: leafExtValues(profiles[first]!, 'csr'),
        ...validity,
        digest: digestForKey(requests[first]!.publicKey),
      });
    } catch {
      continue;
    } // openssl failed the run and recorded nothing: each is signed alone below
    // Key and CN, not position: openssl leaves out a request it refuses and keeps the others.
    const keyAndCn = (key: KeyObject | X509Certificate, cn: string | undefined) =>
      `${publicKeyDer(key).toString('hex')} ${cn}`;
    const waiting = new Map(group.map((i) => [keyAndCn(requests[i]!.publicKey, profiles[i]!.cn), i]));
    for (const pem of signed) {
      let info: CertInfo;
      try {
        info = parseCertPem(pem);
      } catch {
        continue;
      }
      const match = keyAndCn(info.x509, info.subjectCNs[0]);
      const i = waiting.get(match);
      if (i === undefined) {
        strays.push(info.serial);
        continue;
      }
      waiting.delete(match);
      pems[i] = pem;
    }
  }
  for (const [i, r] of requests.entries()) {
    if (pems[i] !== undefined) continue;
    const p = profiles[i]!;
    try {
      pems[i] = await signCsr(issuer, {
        csrPem: r.csrPem,
        subject: `/CN=${p.cn}`,
        extTemplate: p.template,
        extSection: 'leaf',
        extValues: leafExtValues(p),
        ...validity,
        digest: digestForKey(r.publicKey),
      });
    } catch (err) {
      pems[i] = err as Error;
    }
  }
  const out = requests.map((r, i): Issued | Error => {
    const pem = pems[i]!;
    if (pem instanceof Error) return pem;
    const p = profiles[i]!;
    let info: CertInfo | undefined;
    try {
      info = parseCertPem(pem);
      checkIssued(info, {
        cn: p.cn,
        dns: p.dns,
        ips: p.ips,
        uris: p.uris,
        eku: p.eku,
        ca: false,
        issuer: issuerX509,
        publicKey: r.publicKey,
        ...validity,
      });
      return {
        cn: p.cn,
        serial: info.serial,
        certPem: `${info.x509.toString()}${issuerX509.toString()}`,
        info,
        issuer,
      };
    } catch (err) {
      if (info) strays.push(info.serial);
      return err as Error;
    }
  });
  if (live) await voidRecordedLocked(ca, issuer, strays);
  return out;
}

/**
 * Certificates openssl recorded in the live database that will not be handed out: revoked at once
 * (cessationOfOperation) with the CRL re-signed, and audited, so no row stays live for a
 * certificate nobody holds. Caller holds the CA lock.
 */
async function voidRecordedLocked(ca: Ca, issuer: Issuer, serials: readonly string[]): Promise<void> {
  if (serials.length === 0) return;
  await revokeLocked(
    ca,
    serials.map((serial) => ({ issuer, serial })),
    'cessationOfOperation',
  );
  await auditAll(
    ca.store.auditLog,
    serials.map((serial) => ({
      event: 'void',
      result: 'ok' as const,
      serial,
      detail: 'signed but failed its check: revoked at once, never handed out',
    })),
  );
}

/**
 * signLeaves into a private scratch database (no CA lock: the live database is untouched until
 * recordScratchLocked), each result with the row and newcerts copy openssl wrote for it.
 */
export async function signLeavesScratch(
  ca: Ca,
  issuer: Issuer,
  scratchDir: string,
  requests: readonly LeafRequest[],
  validity: Validity,
): Promise<Array<ScratchIssued | Error>> {
  const signed = await signLeaves(ca, { ...issuer, dir: scratchDir }, requests, validity, false);
  const rows = new Map((await readDb(scratchDir)).map((e) => [e.serial, e.line]));
  return Promise.all(
    signed.map(async (s): Promise<ScratchIssued | Error> => {
      if (s instanceof Error) return s;
      const row = rows.get(s.serial);
      if (!row) return new RivetError(`openssl ca recorded no database row for serial ${s.serial}`, 'db');
      const newcert = await fsp.readFile(path.join(scratchDir, 'newcerts', `${s.serial}.pem`), 'utf8');
      return { ...s, issuer, row, newcert };
    }),
  );
}
