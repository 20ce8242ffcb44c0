// Forges PKCS#10 requests byte by byte, so the hostile corpus can say exactly what a CSR holds: any
// CN bytes and string type, several CNs, requested extensions (CA:TRUE, SANs), a broken signature,
// odd keys. Nothing here is trusted by the CA; it is the attacker's toolkit.
import crypto, { type KeyObject } from 'node:crypto';

const len = (n: number): Buffer => {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
};
export const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
};
export const seq = (...p: Buffer[]) => tlv(0x30, ...p);
const set = (...p: Buffer[]) => tlv(0x31, ...p);
export function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const out = [a * 40 + b];
  for (const n of rest) {
    const chunk: number[] = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
const int = (hex: string): Buffer => {
  let b = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
};
const bits = (b: Buffer) => tlv(0x03, Buffer.from([0]), b);

export type CsrSpec = {
  /** CN values; each may carry a string tag (0x0c UTF8String by default, 0x1e BMPString, 0x13 PrintableString). */
  cns?: Array<string | { value: string; tag: number }>;
  /** Extra RDNs before the CN, e.g. { oid: '2.5.4.10', value: 'x' }. */
  rdns?: Array<{ oid: string; value: string }>;
  caTrue?: boolean;
  sans?: string[];
  key?: 'p256' | 'p384' | 'p521' | 'secp256k1' | 'ed25519' | 'rsa1024' | 'rsa2048' | 'rsa8192' | 'rsa16384';
  badSignature?: boolean;
  /** Version field other than 0. */
  version?: number;
};

const keys = new Map<string, Promise<KeyPair>>();
type KeyPair = { publicDer: Buffer; sign: (data: Buffer) => Buffer; alg: Buffer };

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
const RSA_SHA256 = seq(oid('1.2.840.113549.1.1.11'), tlv(0x05));

function nodeKey(k: KeyObject, pub: KeyObject): KeyPair {
  const type = k.asymmetricKeyType;
  const alg = type === 'rsa' ? RSA_SHA256 : type === 'ed25519' ? seq(oid('1.3.101.112')) : ECDSA_SHA256;
  return {
    publicDer: pub.export({ type: 'spki', format: 'der' }),
    alg,
    sign: (d) => crypto.sign(type === 'ed25519' ? null : 'sha256', d, k),
  };
}

const modPow = (b: bigint, e: bigint, m: bigint): bigint => {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
};
function modInv(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [((a % m) + m) % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

/**
 * An RSA public key of `bitsWanted` bits with a working private operation, in milliseconds: the
 * modulus is a product of 512-bit primes (multi-prime RSA, RFC 8017 §3), signed with the CRT.
 * A verifier sees an ordinary `bitsWanted`-bit RSA key and a valid PKCS#1 v1.5 signature; making a
 * real 16384-bit key would take minutes of CPU on every run.
 */
function multiPrimeRsa(bitsWanted: number): KeyPair {
  const e = 65537n;
  const primes: bigint[] = [];
  let n = 1n;
  const size = (x: bigint) => x.toString(2).length;
  const usable = (p: bigint) => (p - 1n) % e !== 0n && !primes.includes(p);
  // 512-bit primes while more than 1024 bits are missing, then one prime of exactly the missing
  // size (between 513 and 1024 bits), retried until the product has exactly bitsWanted bits.
  while (bitsWanted - size(n) > 1024) {
    const p = crypto.generatePrimeSync(512, { bigint: true });
    if (usable(p)) {
      primes.push(p);
      n *= p;
    }
  }
  for (const missing = bitsWanted - size(n); ;) {
    const p = crypto.generatePrimeSync(missing, { bigint: true });
    if (usable(p) && size(n * p) === bitsWanted) {
      primes.push(p);
      n *= p;
      break;
    }
  }
  const publicDer = seq(
    seq(oid('1.2.840.113549.1.1.1'), tlv(0x05)),
    bits(seq(int(n.toString(16)), int(e.toString(16)))),
  );
  const k = Math.ceil(bitsWanted / 8);
  const sign = (data: Buffer): Buffer => {
    const digestInfo = Buffer.concat([
      Buffer.from('3031300d060960864801650304020105000420', 'hex'),
      crypto.createHash('sha256').update(data).digest(),
    ]);
    const em = Buffer.concat([
      Buffer.from([0, 1]),
      Buffer.alloc(k - digestInfo.length - 3, 0xff),
      Buffer.from([0]),
      digestInfo,
    ]);
    const m = BigInt(`0x${em.toString('hex')}`);
    let s = 0n;
    for (const p of primes) {
      const sp = modPow(m, modInv(e, p - 1n), p);
      const rest = n / p;
      s = (s + sp * rest * modInv(rest, p)) % n;
    }
    return Buffer.from(s.toString(16).padStart(k * 2, '0'), 'hex');
  };
  return { publicDer, sign, alg: RSA_SHA256 };
}

function keyPair(name: NonNullable<CsrSpec['key']>): Promise<KeyPair> {
  let p = keys.get(name);
  if (!p) {
    p = (async () => {
      if (name === 'rsa8192') return multiPrimeRsa(8192);
      if (name === 'rsa16384') return multiPrimeRsa(16384);
      const opts: Record<string, [string, object]> = {
        p256: ['ec', { namedCurve: 'P-256' }],
        p384: ['ec', { namedCurve: 'P-384' }],
        p521: ['ec', { namedCurve: 'P-521' }],
        secp256k1: ['ec', { namedCurve: 'secp256k1' }],
        ed25519: ['ed25519', {}],
        rsa1024: ['rsa', { modulusLength: 1024 }],
        rsa2048: ['rsa', { modulusLength: 2048 }],
      };
      const [type, o] = opts[name]!;
      const { privateKey, publicKey } = crypto.generateKeyPairSync(type as 'ec', o as crypto.ECKeyPairKeyObjectOptions);
      return nodeKey(privateKey, publicKey);
    })();
    keys.set(name, p);
  }
  return p;
}

export async function forgeCsrDer(spec: CsrSpec): Promise<Buffer> {
  const kp = await keyPair(spec.key ?? 'p256');
  const rdns = (spec.rdns ?? []).map((r) => set(seq(oid(r.oid), tlv(0x0c, Buffer.from(r.value, 'utf8')))));
  for (const cn of spec.cns ?? []) {
    const { value, tag } = typeof cn === 'string' ? { value: cn, tag: 0x0c } : cn;
    const bytes =
      tag === 0x1e ? Buffer.from(value, 'utf16le').swap16() : Buffer.from(value, tag === 0x13 ? 'latin1' : 'utf8');
    rdns.push(set(seq(oid('2.5.4.3'), tlv(tag, bytes))));
  }
  const exts: Buffer[] = [];
  if (spec.caTrue)
    exts.push(seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq(tlv(0x01, Buffer.from([0xff]))))));
  if (spec.sans?.length)
    exts.push(seq(oid('2.5.29.17'), tlv(0x04, seq(...spec.sans.map((d) => tlv(0x82, Buffer.from(d, 'utf8')))))));
  const attrs = exts.length ? tlv(0xa0, seq(oid('1.2.840.113549.1.9.14'), set(seq(...exts)))) : tlv(0xa0);
  const info = seq(int((spec.version ?? 0).toString(16)), seq(...rdns), kp.publicDer, attrs);
  const sig = kp.sign(info);
  if (spec.badSignature) sig[sig.length - 3]! ^= 0x5a;
  return seq(info, kp.alg, bits(sig));
}

export const toPem = (der: Buffer, label = 'CERTIFICATE REQUEST') =>
  `-----BEGIN ${label}-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '')}\n-----END ${label}-----\n`;
