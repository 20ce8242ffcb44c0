// Keys and certificate signing requests. Keys and our own CSRs are made by the `openssl` binary
// (`openssl req`, the key file 0600 from creation); a CSR says the profile's CN and, when the
// profile has names, its SAN. A CSR someone sends is trusted for its public key, after its
// self-signature (proof that the sender holds the key) verifies here, in process; and for nothing
// else unless it carries, byte for byte, the subject and SAN extension our own profile would give
// (csrProfileMismatch), which lets the batch signer copy that SAN instead of rendering one config
// per certificate.
// Length (over 250 lines once formatted): the CSR reader and the proof-of-possession check must be
// read together with what openssl later reads from the same bytes; splitting them invites drift.
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto, { createPublicKey, type KeyObject } from 'node:crypto';
import { openssl, opensslEach } from '../sys/openssl.ts';
import { renderFile } from '../sys/template.ts';
import { sanValues, type SanNames } from './profile.ts';
import { UsageError } from '../core/errors.ts';
import { checkPublicKey, newKeyArgs, publicKeyOfPrivatePem, type KeyType } from '../core/keys.ts';
import { withTempDir } from './signer.ts';
import { children, content, oid, pemToDer, readTlv, SIG_DIGEST, WEAK_SIGNATURES, type Tlv } from '../x509/der.ts';
import { dnsName, ipName, leafSubjectDer, sequence, uriName } from '../x509/der-write.ts';
import { OID, publicKeyDer } from '../x509/cert.ts';

export const MAX_CSR_BYTES = 64 * 1024;

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

/** What our CSRs say: the CN, and the SANs the profile gives (none: no extension requested). */
export type CsrSubject = SanNames & { cn: string };

const hasSans = (s: CsrSubject) => Boolean(s.dns?.length || s.ips?.length || s.uris?.length);

/** Writes req.cnf for `s` to `conf` and returns the `openssl req` arguments that use it. */
async function reqArgs(conf: string, s: CsrSubject, keyArgs: readonly string[]): Promise<string[]> {
  await fsp.writeFile(conf, renderFile('req.cnf', { cn: s.cn, ...sanValues(s) }));
  return [
    'req',
    '-new',
    '-config',
    conf,
    ...keyArgs,
    '-subj',
    `/CN=${s.cn}`,
    ...(hasSans(s) ? ['-reqexts', 'req_ext'] : []),
  ];
}

async function opensslReq(s: CsrSubject, keyArgs: string[]): Promise<string> {
  return withTempDir(async (tmp) => openssl(await reqArgs(path.join(tmp, 'req.cnf'), s, keyArgs)));
}

/**
 * Makes a new private key at `keyPath` (which the caller created empty with mode 0600, so the key
 * is never readable by others) and a CSR for it, in one openssl run.
 */
export async function newKeyAndCsr(
  keyPath: string,
  type: KeyType,
  subject: CsrSubject,
): Promise<{ csrPem: string; publicKey: KeyObject }> {
  const csrPem = await opensslReq(subject, [...newKeyArgs(type), '-noenc', '-keyout', keyPath]);
  return { csrPem, publicKey: publicKeyOfPrivatePem(await fsp.readFile(keyPath, 'utf8')) };
}

export type KeyRequest = { keyPath: string; type: KeyType; subject: CsrSubject };

/**
 * newKeyAndCsr for many keys: the openssl runs are started by one xargs (opensslEach), two at a
 * time, instead of one fork of this process each. A run that left no usable CSR or key is redone
 * alone by newKeyAndCsr, whose error (openssl's own message) is that item's result.
 */
export async function newKeysAndCsrs(
  items: readonly KeyRequest[],
): Promise<Array<{ csrPem: string; publicKey: KeyObject } | Error>> {
  return withTempDir(async (tmp) => {
    const argvs = await Promise.all(
      items.map(async (it, i) => [
        ...(await reqArgs(path.join(tmp, `req${i}.cnf`), it.subject, [
          ...newKeyArgs(it.type),
          '-noenc',
          '-keyout',
          it.keyPath,
        ])),
        '-out',
        path.join(tmp, `req${i}.csr`),
      ]),
    );
    // xargs -n wants lists of one length: one run per shape (key type, SAN or not).
    const shapes = new Map<number, string[][]>();
    for (const a of argvs) shapes.set(a.length, [...(shapes.get(a.length) ?? []), a]);
    for (const group of shapes.values()) await opensslEach(group, 2);
    return Promise.all(
      items.map(async (it, i) => {
        try {
          const csrPem = await fsp.readFile(path.join(tmp, `req${i}.csr`), 'utf8');
          const publicKey = publicKeyOfPrivatePem(await fsp.readFile(it.keyPath, 'utf8'));
          // A whole request for this very key, or the run is redone alone below.
          if (!publicKeyDer(await csrPublicKey(csrPem)).equals(publicKeyDer(publicKey)))
            throw new Error('key and CSR differ');
          return { csrPem, publicKey };
        } catch {
          try {
            return await newKeyAndCsr(it.keyPath, it.type, it.subject);
          } catch (err) {
            return err as Error;
          }
        }
      }),
    );
  });
}

/** A CSR for an existing key (renewal re-uses the key; DESIGN §4.3). */
export async function csrForKey(keyPath: string, subject: CsrSubject): Promise<string> {
  return opensslReq(subject, ['-key', keyPath]);
}

/** The DER value of the subjectAltName extension a profile gives, in the order openssl writes it. */
export function sanExtensionValue(s: CsrSubject): Buffer {
  return sequence(...(s.dns ?? []).map(dnsName), ...(s.ips ?? []).map(ipName), ...(s.uris ?? []).map(uriName));
}

/**
 * Parses a CSR someone sent: exactly one PEM request, a valid self-signature, an acceptable key.
 * Returns the public key; subject and requested extensions are not trusted here.
 */
export async function csrPublicKey(csrPem: string): Promise<KeyObject> {
  if (typeof csrPem !== 'string' || csrPem.length === 0)
    throw new UsageError('CSR is empty — send one PEM "CERTIFICATE REQUEST"', 'bad_csr');
  if (csrPem.length > MAX_CSR_BYTES)
    throw new UsageError(`CSR is ${csrPem.length} bytes — at most ${MAX_CSR_BYTES} are accepted`, 'bad_csr');
  const ders = pemToDer(csrPem, 'CERTIFICATE REQUEST');
  if (ders.length !== 1)
    throw new UsageError(`expected exactly one PEM "CERTIFICATE REQUEST", found ${ders.length}`, 'bad_csr');
  // openssl also reads "NEW CERTIFICATE REQUEST" blocks: with one of those before ours, it would
  // sign a request nobody checked. The signer only ever gives openssl the re-armoured DER of the
  // one block (lib/sign/signer.ts csrForOpenssl); this refusal says so to the sender.
  if (csrPem.split('-----BEGIN ').length !== 2)
    throw new UsageError('CSR text holds more than one PEM block — send only the "CERTIFICATE REQUEST"', 'bad_csr');
  // What is checked here must be exactly what `openssl ca` later reads from the same text: base64
  // decoding skips stray bytes (a NUL inside the armour verified here, then failed in openssl as an
  // internal error), and bytes after the request would be ignored by one parser and not another.
  if (/-----BEGIN CERTIFICATE REQUEST-----(?![A-Za-z0-9+/=\s]*-----END)/.test(csrPem))
    throw new UsageError(
      'CSR PEM holds characters that are not base64 — send the request as openssl wrote it',
      'bad_csr',
    );
  const der = ders[0]!;
  if (!derIsOneTlv(der))
    throw new UsageError('CSR is not one DER-encoded request (truncated, or bytes after its end)', 'bad_csr');
  const parts = requestParts(der);
  if (!parts)
    throw new UsageError(
      'CSR is malformed: not a PKCS#10 request (version, subject, public key, attributes; algorithm; signature)',
      'bad_csr',
    );
  let key: KeyObject;
  try {
    key = createPublicKey({ key: parts.spki.bytes, format: 'der', type: 'spki' });
  } catch {
    throw new UsageError('CSR public key cannot be read', 'bad_csr');
  }
  checkPublicKey(key);
  // The proof of possession, over the CertificationRequestInfo bytes exactly as sent. (`openssl ca`
  // checks it again when it signs.)
  const badSignature = csrSignatureProblem(parts, key);
  if (badSignature) throw new UsageError(`CSR ${badSignature}`, 'bad_csr');
  return key;
}

type RequestParts = { info: Tlv; subject: Tlv; spki: Tlv; attributes: Tlv; alg: Tlv; sig: Tlv };

/** The pieces of a PKCS#10 request, or undefined when its outline is wrong. */
function requestParts(der: Buffer): RequestParts | undefined {
  try {
    const outer = readTlv(der);
    const [info, alg, sig, ...extra] = children(outer);
    if (
      outer.tag !== 0x30 ||
      !info ||
      !alg ||
      !sig ||
      extra.length ||
      info.tag !== 0x30 ||
      alg.tag !== 0x30 ||
      sig.tag !== 0x03
    )
      return undefined;
    const [version, subject, spki, attributes, ...more] = children(info);
    // Any version number: like openssl, we read v1 fields whatever it says (the hostile corpus sends 5).
    if (!version || version.tag !== 0x02) return undefined;
    if (
      !subject ||
      subject.tag !== 0x30 ||
      !spki ||
      spki.tag !== 0x30 ||
      !attributes ||
      attributes.tag !== 0xa0 ||
      more.length
    )
      return undefined;
    return { info, subject, spki, attributes, alg, sig };
  } catch {
    return undefined;
  }
}

/**
 * Why a CSR does not ask for exactly what our profile gives, or undefined when it does: the leaf
 * subject (one CN, a UTF8String, byte for byte), and, as its only requested extension, a
 * non-critical SAN whose DER equals the profile's. Only then may the batch signer let `openssl ca`
 * take the subject from it and copy its SAN (copy_extensions = copy).
 */
export function csrProfileMismatch(csrPem: string, want: CsrSubject): string | undefined {
  const ders = pemToDer(csrPem, 'CERTIFICATE REQUEST');
  const parts = ders.length === 1 ? requestParts(ders[0]!) : undefined;
  if (!parts) return 'not one well-formed PKCS#10 request';
  try {
    if (!parts.subject.bytes.equals(leafSubjectDer(want.cn))) return `subject is not exactly CN=${want.cn}`;
    const attrs = children(parts.attributes);
    if (attrs.length !== 1) return `${attrs.length} attributes, want one extension request`;
    const [type, values, ...rest] = children(attrs[0]!);
    if (!type || oid(type) !== EXTENSION_REQUEST || !values || values.tag !== 0x31 || rest.length)
      return 'its attribute is not one extension request';
    const sets = children(values);
    if (sets.length !== 1) return 'the extension request holds several sets';
    const exts = children(sets[0]!);
    if (exts.length !== 1) return `${exts.length} requested extensions, want only subjectAltName`;
    const [extId, extValue, ...tail] = children(exts[0]!);
    if (!extId || oid(extId) !== OID.san || !extValue || extValue.tag !== 0x04 || tail.length)
      return 'the requested extension is not a non-critical subjectAltName';
    return content(extValue).equals(sanExtensionValue(want))
      ? undefined
      : "its subjectAltName differs from the profile's";
  } catch (err) {
    return `unreadable (${(err as Error).message})`;
  }
}

function derIsOneTlv(der: Buffer): boolean {
  try {
    return readTlv(der).bytes.length === der.length;
  } catch {
    return false;
  }
}

/** Why the proof of possession fails, or undefined when it holds. */
function csrSignatureProblem(parts: RequestParts, key: KeyObject): string | undefined {
  let algorithm: string;
  try {
    algorithm = oid(children(parts.alg)[0]!);
  } catch {
    return 'signature algorithm cannot be read — the request is malformed';
  }
  const weak = WEAK_SIGNATURES[algorithm];
  if (weak)
    return `is signed with ${weak}, which is not accepted — sign it with SHA-256 or better (openssl req -sha256)`;
  const digest = SIG_DIGEST[algorithm];
  if (!digest)
    return `is signed with algorithm ${algorithm}, which is not accepted — use ECDSA or RSA with SHA-256, SHA-384 or SHA-512`;
  let valid = false;
  try {
    valid = crypto.verify(digest, parts.info.bytes, key, content(parts.sig).subarray(1));
  } catch {
    /* a malformed signature does not verify */
  }
  return valid ? undefined : 'signature does not verify — the request was altered or not signed by its own key';
}
