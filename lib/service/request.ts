// What a client may send to /enroll, /renew and /agents: `{ "csr": PEM, "sans"?: [...] }`. The
// CSR's subject CN names the identity asked for (checked against who is asking); everything else
// in the CSR except its public key is ignored (DESIGN §3).
import { MAX_CSR_BYTES } from '../sign/csr.ts';
import { children, nameAttributes, pemToDer, readTlv } from '../x509/der.ts';
import { OID } from '../x509/cert.ts';
import { identityFromCommonName, type Identity, type MeshDomain } from '../core/identity.ts';
import { parseSan, type San } from '../core/san.ts';
import { RivetError, show } from '../core/errors.ts';

export type CsrRequest = { csr: string; cn: string; sansText?: string[] };

const MAX_SANS = 32;

export function csrRequest(body: Record<string, unknown>): CsrRequest {
  const unknown = Object.keys(body).filter((k) => k !== 'csr' && k !== 'sans');
  if (unknown.length)
    throw new RivetError(
      `unknown field ${show(unknown[0])} — send {"csr": "<PEM>", "sans": ["DNS:…", "IP:…"]}`,
      'bad_request',
    );
  const { csr, sans } = body;
  if (typeof csr !== 'string' || csr.length === 0)
    throw new RivetError('field "csr" must be a PEM "CERTIFICATE REQUEST"', 'bad_csr');
  if (csr.length > MAX_CSR_BYTES)
    throw new RivetError(`CSR is ${csr.length} bytes — at most ${MAX_CSR_BYTES}`, 'bad_csr');
  let sansText: string[] | undefined;
  if (sans !== undefined) {
    if (!Array.isArray(sans) || sans.some((s) => typeof s !== 'string'))
      throw new RivetError('field "sans" must be a list of "DNS:<name>" or "IP:<address>" strings', 'bad_san');
    if (sans.length > MAX_SANS) throw new RivetError(`at most ${MAX_SANS} extra SANs, got ${sans.length}`, 'bad_san');
    sansText = sans as string[];
  }
  return { csr, cn: csrCommonName(csr), sansText };
}

/** The one CN of a CSR's subject, read in-process (the signature is checked later by openssl). */
export function csrCommonName(pem: string): string {
  const ders = pemToDer(pem, 'CERTIFICATE REQUEST');
  if (ders.length !== 1)
    throw new RivetError(`expected exactly one PEM "CERTIFICATE REQUEST", found ${ders.length}`, 'bad_csr');
  let cns: string[];
  try {
    const info = children(readTlv(ders[0]!))[0]!;
    const subject = children(info)[1]!;
    cns = nameAttributes(subject)
      .filter((a) => a.oid === OID.cn)
      .map((a) => a.value);
  } catch {
    throw new RivetError('CSR is not a well-formed PKCS#10 request', 'bad_csr');
  }
  if (cns.length !== 1) throw new RivetError(`CSR subject must hold exactly one CN, found ${cns.length}`, 'bad_csr');
  return cns[0]!;
}

/** The identity a CN names, or a 400 that quotes the CN and the forms allowed. */
export function identityOfCn(cn: string, domain: MeshDomain): Identity {
  try {
    return identityFromCommonName(cn, domain);
  } catch (err) {
    throw new RivetError(`CSR CN ${show(cn)}: ${(err as Error).message}`, 'bad_identity');
  }
}

export function parseSans(texts: readonly string[] | undefined): San[] {
  return (texts ?? []).map((t) => parseSan(t));
}
