// Keys and certificate signing requests. A CSR someone sends is trusted for its public key, after
// its self-signature (proof that the sender holds the key) verifies; and for nothing else unless it
// carries, byte for byte, the subject and SAN extension our own profile would give (csrCarriesProfile),
// which lets the batch signer copy that SAN instead of rendering one config per certificate.
//
// Keys and our own CSRs are made in process by node:crypto, which is OpenSSL's libcrypto: the same
// key generation and ECDSA as `openssl req -newkey`, without paying an openssl process start
// (~10 ms of a 2-core machine) per key. Signing certificates stays with the `openssl ca` binary.
import fsp from 'node:fs/promises';
import crypto, { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { UsageError } from './errors.ts';
import { checkPublicKey, type KeyType } from './keys.ts';
import { children, content, oid, pemToDer, readTlv, derToPem, SIG_DIGEST, nameAttributes, type Tlv } from './der.ts';
import { bitString, dnsName, ipName, nullValue, objectId, octetString, sequence, set, smallInteger, tlv, uriName, utf8String } from './der-write.ts';
import { OID } from './cert.ts';

export const MAX_CSR_BYTES = 64 * 1024;

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

/** What our CSRs say: the CN, and the SANs the profile gives (empty lists: no SAN extension). */
export type CsrSubject = { cn: string; dns?: readonly string[]; ips?: readonly string[]; uris?: readonly string[] };

const makeKeyPair = promisify(generateKeyPair);

async function newPrivateKey(type: KeyType): Promise<KeyObject> {
  switch (type) {
    case 'ec-p256': return (await makeKeyPair('ec', { namedCurve: 'prime256v1' })).privateKey;
    case 'ec-p384': return (await makeKeyPair('ec', { namedCurve: 'secp384r1' })).privateKey;
    case 'rsa-3072': return (await makeKeyPair('rsa', { modulusLength: 3072 })).privateKey;
    case 'rsa-4096': return (await makeKeyPair('rsa', { modulusLength: 4096 })).privateKey;
  }
}

/**
 * Makes a new private key into `keyPath` (which the caller created empty with mode 0600, so the key
 * is never readable by others) and returns a CSR for it with its public key.
 */
export async function newKeyAndCsr(keyPath: string, type: KeyType, subject: CsrSubject): Promise<{ csrPem: string; publicKey: KeyObject }> {
  const key = await newPrivateKey(type);
  await fsp.writeFile(keyPath, key.export({ type: 'pkcs8', format: 'pem' }));
  return { csrPem: buildCsr(key, subject), publicKey: createPublicKey(key) };
}

/** A CSR for an existing key (renewal re-uses the key; DESIGN §4.3). */
export async function csrForKey(keyPath: string, subject: CsrSubject): Promise<string> {
  return buildCsr(crypto.createPrivateKey(await fsp.readFile(keyPath)), subject);
}

/** The DER value of the subjectAltName extension a profile gives, in the order openssl writes it. */
export function sanExtensionValue(s: CsrSubject): Buffer {
  return sequence(...(s.dns ?? []).map(dnsName), ...(s.ips ?? []).map(ipName), ...(s.uris ?? []).map(uriName));
}

function signatureAlgorithm(key: KeyObject): { der: Buffer; digest: string } {
  if (key.asymmetricKeyType === 'ec') {
    return key.asymmetricKeyDetails?.namedCurve === 'secp384r1'
      ? { der: sequence(objectId('1.2.840.10045.4.3.3')), digest: 'sha384' }
      : { der: sequence(objectId('1.2.840.10045.4.3.2')), digest: 'sha256' };
  }
  return { der: sequence(objectId('1.2.840.113549.1.1.11'), nullValue()), digest: 'sha256' };
}

/** PKCS#10 (RFC 2986): subject CN only, the SAN as the one requested extension when there is one. */
export function buildCsr(key: KeyObject, s: CsrSubject): string {
  const subject = sequence(set(sequence(objectId(OID.cn), utf8String(s.cn))));
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const hasSan = Boolean(s.dns?.length || s.ips?.length || s.uris?.length);
  const attributes = hasSan
    ? tlv(0xa0, sequence(objectId(EXTENSION_REQUEST), set(sequence(sequence(objectId(OID.san), octetString(sanExtensionValue(s)))))))
    : tlv(0xa0);
  const info = sequence(smallInteger(0), subject, spki, attributes);
  const alg = signatureAlgorithm(key);
  return derToPem(sequence(info, alg.der, bitString(crypto.sign(alg.digest, info, key))), 'CERTIFICATE REQUEST');
}

/**
 * Parses a CSR someone sent: exactly one PEM request, a valid self-signature, an acceptable key.
 * Returns the public key; subject and requested extensions are not trusted here.
 */
export async function csrPublicKey(csrPem: string): Promise<KeyObject> {
  if (typeof csrPem !== 'string' || csrPem.length === 0) throw new UsageError('CSR is empty — send one PEM "CERTIFICATE REQUEST"', 'bad_csr');
  if (csrPem.length > MAX_CSR_BYTES) throw new UsageError(`CSR is ${csrPem.length} bytes — at most ${MAX_CSR_BYTES} are accepted`, 'bad_csr');
  const ders = pemToDer(csrPem, 'CERTIFICATE REQUEST');
  if (ders.length !== 1) throw new UsageError(`expected exactly one PEM "CERTIFICATE REQUEST", found ${ders.length}`, 'bad_csr');
  // What is checked here must be exactly what `openssl ca` later reads from the same text: base64
  // decoding skips stray bytes (a NUL inside the armour verified here, then failed in openssl as an
  // internal error), and bytes after the request would be ignored by one parser and not another.
  if (/-----BEGIN CERTIFICATE REQUEST-----(?![A-Za-z0-9+/=\s]*-----END)/.test(csrPem)) throw new UsageError('CSR PEM holds characters that are not base64 — send the request as openssl wrote it', 'bad_csr');
  const der = ders[0]!;
  if (!derIsOneTlv(der)) throw new UsageError('CSR is not one DER-encoded request (truncated, or bytes after its end)', 'bad_csr');
  const parts = requestParts(der);
  if (!parts) throw new UsageError('CSR is malformed: not a PKCS#10 request (version, subject, public key, attributes; algorithm; signature)', 'bad_csr');
  let key: KeyObject;
  try { key = createPublicKey({ key: parts.spki.bytes, format: 'der', type: 'spki' }); } catch {
    throw new UsageError('CSR public key cannot be read', 'bad_csr');
  }
  checkPublicKey(key);
  // The proof of possession, over the CertificationRequestInfo bytes exactly as sent. (`openssl ca`
  // checks it again when it signs.)
  if (!csrSignatureValid(parts, key)) throw new UsageError('CSR signature does not verify — the request was altered or not signed by its own key', 'bad_csr');
  return key;
}

type RequestParts = { info: Tlv; subject: Tlv; spki: Tlv; attributes: Tlv; alg: Tlv; sig: Tlv };

/** The pieces of a PKCS#10 request, or undefined when its outline is wrong. */
function requestParts(der: Buffer): RequestParts | undefined {
  try {
    const outer = readTlv(der);
    const [info, alg, sig, ...extra] = children(outer);
    if (outer.tag !== 0x30 || !info || !alg || !sig || extra.length || info.tag !== 0x30 || alg.tag !== 0x30 || sig.tag !== 0x03) return undefined;
    const [version, subject, spki, attributes, ...more] = children(info);
    // Any version number: like openssl, we read v1 fields whatever it says (the hostile corpus sends 5).
    if (!version || version.tag !== 0x02) return undefined;
    if (!subject || subject.tag !== 0x30 || !spki || spki.tag !== 0x30 || !attributes || attributes.tag !== 0xa0 || more.length) return undefined;
    return { info, subject, spki, attributes, alg, sig };
  } catch { return undefined; }
}

/**
 * True when a CSR asks for exactly what our profile gives: a subject of one CN equal to `want.cn`,
 * and, as its only requested extension, a non-critical SAN whose DER equals the profile's. Only
 * then may the batch signer let `openssl ca` copy the SAN from it (copy_extensions = copy).
 */
export function csrCarriesProfile(csrPem: string, want: CsrSubject): boolean {
  const ders = pemToDer(csrPem, 'CERTIFICATE REQUEST');
  const parts = ders.length === 1 ? requestParts(ders[0]!) : undefined;
  if (!parts) return false;
  try {
    const rdns = children(parts.subject);
    if (rdns.length !== 1 || children(rdns[0]!).length !== 1) return false;
    const names = nameAttributes(parts.subject);
    if (names.length !== 1 || names[0]!.oid !== OID.cn || names[0]!.value !== want.cn) return false;
    const attrs = children(parts.attributes);
    if (attrs.length !== 1) return false;
    const [type, values, ...rest] = children(attrs[0]!);
    if (!type || oid(type) !== EXTENSION_REQUEST || !values || values.tag !== 0x31 || rest.length) return false;
    const sets = children(values);
    if (sets.length !== 1) return false;
    const exts = children(sets[0]!);
    if (exts.length !== 1) return false;
    const [extId, extValue, ...tail] = children(exts[0]!);
    if (!extId || oid(extId) !== OID.san || !extValue || extValue.tag !== 0x04 || tail.length) return false;
    return content(extValue).equals(sanExtensionValue(want));
  } catch { return false; }
}

function derIsOneTlv(der: Buffer): boolean {
  try { return readTlv(der).bytes.length === der.length; } catch { return false; }
}

function csrSignatureValid(parts: RequestParts, key: KeyObject): boolean {
  try {
    const algorithm = children(parts.alg)[0];
    const digest = algorithm ? SIG_DIGEST[oid(algorithm)] : undefined;
    if (!digest) return false;
    return crypto.verify(digest, parts.info.bytes, key, content(parts.sig).subarray(1));
  } catch { return false; }
}
