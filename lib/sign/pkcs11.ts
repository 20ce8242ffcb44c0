// A root key held in a PKCS#11 token (DESIGN §4.6, the seed's HSM follow-up). openssl reaches it
// through the pkcs11 engine (libp11): `-engine pkcs11 -keyform engine -keyfile "pkcs11:…"`, with
// OPENSSL_CONF pointing at a rendered templates/pkcs11.cnf that names the token's module. The key
// never exists as a file; the PIN reaches the engine only by `-passin env:` (libp11 asks openssl's
// UI for the PIN, and openssl answers with the -passin value), never by argv or the URI.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { renderFile } from '../sys/template.ts';
import { exists, PUBLIC_MODE, readText, writeAtomic } from '../sys/files.ts';
import { RivetError, UsageError, show } from '../core/errors.ts';

/** Where the token key is, recorded in root/ at init (public: no PIN, no key material). */
export type Pkcs11Root = { uri: string; module: string };

export const PKCS11_FILE = 'pkcs11.json';
export const PIN_ENV = 'RIVET_CA_KEY_PASS';

/** Modules tried when none is given: SoftHSM2, then p11-kit's proxy (every registered module). */
const DEFAULT_MODULES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so',
];

// RFC 7512 path and query characters, minus the ones our argv or messages should never carry.
const URI_CHARS = /^pkcs11:[A-Za-z0-9%._~:;=/?&@+-]+$/;
const MODULE_PATH = /^\/[A-Za-z0-9._/+-]+$/;

/**
 * Checks a PKCS#11 URI for the root key and pins it to the private key object. A PIN inside the
 * URI (pin-value) would end up on openssl's argv, so it is refused.
 */
export function parsePkcs11Uri(uri: string): string {
  if (!URI_CHARS.test(uri))
    throw new UsageError(`PKCS#11 URI ${show(uri)} is not valid — want e.g. "pkcs11:token=rivet-root;object=root"`);
  const attrs = new Map<string, string>();
  for (const part of uri.slice('pkcs11:'.length).split(/[;?&]/).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 1) throw new UsageError(`PKCS#11 URI ${show(uri)}: attribute ${show(part)} has no value`);
    attrs.set(part.slice(0, eq).toLowerCase(), part.slice(eq + 1));
  }
  if (attrs.has('pin-value') || attrs.has('pin-source')) {
    throw new UsageError(
      'PKCS#11 URI must not carry the PIN (pin-value/pin-source) — give it with --pin-file FILE, never on the command line',
    );
  }
  if (!attrs.has('object') && !attrs.has('id'))
    throw new UsageError(`PKCS#11 URI ${show(uri)} names no key — add object=<label> or id=<hex>`);
  const type = attrs.get('type');
  if (type !== undefined && type !== 'private')
    throw new UsageError(
      `PKCS#11 URI ${show(uri)} has type=${type} — the root signs with its private key (type=private)`,
    );
  if (type !== undefined) return uri;
  const q = uri.indexOf('?');
  const [pathPart, query] = q === -1 ? [uri, ''] : [uri.slice(0, q), uri.slice(q)];
  return `${pathPart.replace(/;$/, '')};type=private${query}`;
}

export async function pkcs11Module(given: string | undefined): Promise<string> {
  const candidates = given ? [given] : DEFAULT_MODULES;
  for (const m of candidates) {
    if (!MODULE_PATH.test(m))
      throw new UsageError(`PKCS#11 module path ${show(m)} must be an absolute path of plain characters`);
    if (await exists(m)) return m;
  }
  throw new UsageError(
    given
      ? `PKCS#11 module ${show(given)} does not exist — install the token's library or fix --pkcs11-module`
      : `no PKCS#11 module found (tried ${DEFAULT_MODULES.join(', ')}) — give --pkcs11-module, or run test/setup/install-deps.sh for SoftHSM2`,
  );
}

export async function readPkcs11(dir: string): Promise<Pkcs11Root | undefined> {
  const text = await readText(path.join(dir, PKCS11_FILE));
  if (text === undefined) return undefined;
  let v: Partial<Pkcs11Root>;
  try {
    v = JSON.parse(text) as Partial<Pkcs11Root>;
  } catch {
    throw new RivetError(`${path.join(dir, PKCS11_FILE)} is not valid JSON — restore it from a backup`, 'pkcs11');
  }
  if (
    typeof v.uri !== 'string' ||
    typeof v.module !== 'string' ||
    !URI_CHARS.test(v.uri) ||
    !MODULE_PATH.test(v.module)
  ) {
    throw new RivetError(
      `${path.join(dir, PKCS11_FILE)} must hold {"uri": "pkcs11:…", "module": "/path/to/module.so"}`,
      'pkcs11',
    );
  }
  return { uri: v.uri, module: v.module };
}

export async function writePkcs11(dir: string, cfg: Pkcs11Root): Promise<void> {
  await writeAtomic(path.join(dir, PKCS11_FILE), `${JSON.stringify(cfg, null, 2)}\n`, PUBLIC_MODE);
}

/**
 * openssl arguments and environment that make it sign with the token key. `flag` is the option
 * the subcommand uses for its key (`-key` for req, `-keyfile` for ca). The engine config is
 * written to `tmp`, a private temp directory the caller removes.
 */
export async function engineKeyArgs(
  cfg: Pkcs11Root,
  flag: '-key' | '-keyfile',
  tmp: string,
  pin: string | undefined,
): Promise<{ args: string[]; env: Record<string, string> }> {
  if (!pin) {
    throw new UsageError(
      'the root key is in a PKCS#11 token and needs its PIN — give it with --root-passphrase-file FILE (or RIVET_ROOT_PASSPHRASE_FILE), never on the command line',
      'pin_missing',
    );
  }
  const conf = path.join(tmp, 'pkcs11.cnf');
  await fsp.writeFile(conf, renderFile('pkcs11.cnf', { module: cfg.module }), { mode: 0o600 });
  return {
    args: ['-engine', 'pkcs11', '-keyform', 'engine', flag, cfg.uri, '-passin', `env:${PIN_ENV}`],
    env: { OPENSSL_CONF: conf, [PIN_ENV]: pin },
  };
}

/** True when this host can sign as the root: a key file, or a token reference. */
export async function rootKeyAvailable(rootDir: string): Promise<boolean> {
  return (await exists(path.join(rootDir, 'ca.key'))) || (await exists(path.join(rootDir, PKCS11_FILE)));
}

/**
 * Why the root cannot sign unattended right now (a root CRL refresh from cron), or undefined when
 * it can: the key is offline, or it needs a PIN/passphrase nobody gave.
 */
export async function rootUnattendedProblem(
  rootDir: string,
  secret: { passphrase?: string } | undefined,
): Promise<string | undefined> {
  if (await exists(path.join(rootDir, PKCS11_FILE))) {
    return secret?.passphrase
      ? undefined
      : 'the root key is in a PKCS#11 token and no PIN was given (--root-passphrase-file)';
  }
  const key = await readText(path.join(rootDir, 'ca.key'));
  if (key === undefined) return 'root key is offline';
  if (key.includes('ENCRYPTED') && !secret?.passphrase)
    return 'the root key is encrypted and no passphrase was given (--root-passphrase-file)';
  return undefined;
}
