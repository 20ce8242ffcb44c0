// PKCS#12 (RFC 7292) → the PEM key and certificates that node:tls and undici take as `key`/`cert`,
// so a user's one-file identity (`issue-user --p12`, `export-p12`: what Claude Desktop and Cursor
// users hold) works wherever a node dir's node.key/node.crt do. In-process and synchronous:
// loadMeshTls is synchronous and a process start per load would be wasted.
//
// OpenSSL itself checks the file first (tls.createSecureContext({ pfx }) runs PKCS12_parse: the
// MAC, the passphrase, the ciphers); this file then reads what OpenSSL 3 writes by default —
// PBES2 (PBKDF2 + AES-CBC) for the certificate bag, an encrypted PKCS#8 key that node:crypto
// decrypts itself — and refuses the legacy RC2/3DES forms with the fix.
import crypto from 'node:crypto';
import tls from 'node:tls';
import { RivetError, show } from '../core/errors.ts';
import { children, content, derToPem, oid, readTlv, type Tlv } from './der.ts';

const OIDS = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
} as const;

const PRF: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};
const CIPHER: Record<string, { name: string; keyLength: number }> = {
  '2.16.840.1.101.3.4.1.2': { name: 'aes-128-cbc', keyLength: 16 },
  '2.16.840.1.101.3.4.1.22': { name: 'aes-192-cbc', keyLength: 24 },
  '2.16.840.1.101.3.4.1.42': { name: 'aes-256-cbc', keyLength: 32 },
};

export type Pkcs12Contents = { key: string; cert: string };

function fail(file: string, why: string): never {
  throw new RivetError(`PKCS#12 file ${show(file)} ${why}`, 'bad_p12');
}

const explicit = (t: Tlv): Tlv => readTlv(content(t));

/** PBES2 decryption of an EncryptedContentInfo's content (the certificate bag). */
function pbes2Decrypt(alg: Tlv, data: Buffer, passphrase: string, file: string): Buffer {
  const [algOid, params] = children(alg);
  if (!algOid || oid(algOid) !== OIDS.pbes2 || !params)
    fail(file, 'uses a legacy cipher (RC2/3DES) — re-export it with `rivet-ca export-p12`, which writes AES-256');
  const [kdf, scheme] = children(params);
  const [kdfOid, kdfParams] = children(kdf!);
  if (oid(kdfOid!) !== OIDS.pbkdf2) fail(file, 'uses a key derivation other than PBKDF2');
  const p = children(kdfParams!);
  const salt = content(p[0]!);
  const iterations = Number(BigInt(`0x${content(p[1]!).toString('hex')}`));
  const prfTlv = p.find((t, i) => i >= 2 && t.tag === 0x30);
  const digest = prfTlv ? PRF[oid(children(prfTlv)[0]!)] : 'sha1';
  const [cipherOid, iv] = children(scheme!);
  const cipher = CIPHER[oid(cipherOid!)];
  if (!digest || !cipher || !iv) fail(file, 'uses a cipher other than AES-CBC with HMAC-SHA PBKDF2');
  const key = crypto.pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, cipher.keyLength, digest);
  const d = crypto.createDecipheriv(cipher.name, key, content(iv));
  return Buffer.concat([d.update(data), d.final()]);
}

/** The SafeBags of every ContentInfo of the AuthenticatedSafe, decrypted where needed. */
function safeBags(authSafe: Buffer, passphrase: string, file: string): Tlv[] {
  const bags: Tlv[] = [];
  for (const info of children(readTlv(authSafe))) {
    const [type, value] = children(info);
    const kind = oid(type!);
    let safeContents: Buffer;
    if (kind === OIDS.data) {
      safeContents = content(explicit(value!));
    } else if (kind === OIDS.encryptedData) {
      const [, eci] = children(explicit(value!));
      const [, alg, encrypted] = children(eci!);
      if (!alg || !encrypted || encrypted.tag !== 0x80) fail(file, 'holds an encrypted part in an unexpected form');
      safeContents = pbes2Decrypt(alg, content(encrypted), passphrase, file);
    } else {
      continue; // enveloped (public-key) data: not something export-p12 writes
    }
    bags.push(...children(readTlv(safeContents)));
  }
  return bags;
}

/**
 * Reads `der` (the bytes of `file`, named in errors) with `passphrase`. Returns the private key
 * (unencrypted PKCS#8 PEM, in memory only) and the certificates as one PEM, leaf first.
 */
export function readPkcs12(der: Buffer, passphrase: string, file: string): Pkcs12Contents {
  try {
    tls.createSecureContext({ pfx: der, passphrase });
  } catch (err) {
    const why = String((err as Error).message);
    if (/mac verify failure|invalid password/i.test(why))
      fail(file, 'does not open with this passphrase (or is damaged) — check --passphrase-file');
    fail(file, `cannot be read: ${why} — re-export it with \`rivet-ca export-p12\``);
  }
  let bags: Tlv[];
  try {
    const [, authSafe] = children(readTlv(der));
    const [type, value] = children(authSafe!);
    if (oid(type!) !== OIDS.data)
      fail(file, 'is signed with a public key, not a passphrase — re-export it with `rivet-ca export-p12`');
    bags = safeBags(content(explicit(value!)), passphrase, file);
  } catch (err) {
    if (err instanceof RivetError && err.code === 'bad_p12') throw err;
    fail(file, `cannot be read: ${(err as Error).message}`);
  }
  let key: crypto.KeyObject | undefined;
  const certs: crypto.X509Certificate[] = [];
  for (const bag of bags) {
    const [type, value] = children(bag);
    const kind = oid(type!);
    const inner = explicit(value!);
    if (kind === OIDS.shroudedKeyBag)
      key = crypto.createPrivateKey({ key: inner.bytes, format: 'der', type: 'pkcs8', passphrase });
    else if (kind === OIDS.keyBag) key = crypto.createPrivateKey({ key: inner.bytes, format: 'der', type: 'pkcs8' });
    else if (kind === OIDS.certBag) {
      const [certType, certValue] = children(inner);
      if (oid(certType!) === OIDS.x509Certificate)
        certs.push(new crypto.X509Certificate(content(explicit(certValue!))));
    }
  }
  if (!key) fail(file, 'holds no private key — export it with its key (`rivet-ca export-p12`)');
  const leaf = certs.find((c) => c.checkPrivateKey(key));
  if (!leaf) fail(file, 'holds no certificate for its private key');
  const chain = [leaf, ...certs.filter((c) => c !== leaf)];
  return {
    key: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: chain.map((c) => derToPem(c.raw, 'CERTIFICATE')).join(''),
  };
}
