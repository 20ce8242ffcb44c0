// Configuration (DESIGN §9): flags > environment > .env file > defaults. Scripts pass flags in;
// this module merges the rest. dotenv only parses: process.env is never modified.
import fs from 'node:fs';
import path from 'node:path';
import dotenv from 'dotenv';
import { UsageError, show } from '../core/errors.ts';
import { meshDomain, type MeshDomain } from '../core/identity.ts';
import { DEFAULT_SAN_CIDRS, parseCidrs, type Cidr } from '../core/san.ts';

export type Env = Record<string, string | undefined>;

export type Config = {
  caDir: string;
  nodeDir: string;
  domain: MeshDomain;
  sanCidrs: Cidr[];
  crlPushUrl: string;
  datahubUrl?: string;
  caFingerprint?: string;
  env: Env;
};

export const DEFAULTS = {
  caDir: '/shared/rivet-ca',
  nodeDir: '/etc/rivetos',
  domain: 'mesh',
  crlPushUrl: 'https://{node}.{domain}:3000/api/mesh/crl',
};

/** Environment merged over the .env file (RIVET_ENV_FILE, else ./.env). */
export function loadEnv(env: Env = process.env): Env {
  const file = env.RIVET_ENV_FILE ?? path.resolve('.env');
  let fromFile: Env = {};
  if (fs.existsSync(file)) fromFile = dotenv.parse(fs.readFileSync(file));
  else if (env.RIVET_ENV_FILE)
    throw new UsageError(`RIVET_ENV_FILE ${show(file)} does not exist — fix the path or unset it`);
  return { ...fromFile, ...env };
}

/** Where `rivet-ca serve` listens unless told otherwise (DESIGN §4.7). */
export const DEFAULT_SERVE_PORT = 8443;

export type ConfigFlags = { caDir?: string; nodeDir?: string; domain?: string };

export function loadConfig(flags: ConfigFlags = {}, baseEnv: Env = process.env): Config {
  const env = loadEnv(baseEnv);
  const pick = (flag: string | undefined, name: string, fallback: string) => flag ?? nonEmpty(env[name]) ?? fallback;
  return {
    caDir: path.resolve(pick(flags.caDir, 'RIVET_CA_DIR', DEFAULTS.caDir)),
    nodeDir: path.resolve(pick(flags.nodeDir, 'RIVET_NODE_DIR', DEFAULTS.nodeDir)),
    domain: meshDomain(pick(flags.domain, 'RIVET_MESH_DOMAIN', DEFAULTS.domain)),
    sanCidrs: parseCidrs(pick(undefined, 'RIVET_SAN_CIDRS', DEFAULT_SAN_CIDRS)),
    crlPushUrl: pick(undefined, 'RIVET_CRL_PUSH_URL', DEFAULTS.crlPushUrl),
    datahubUrl: nonEmpty(env.RIVET_DATAHUB_URL),
    caFingerprint: nonEmpty(env.RIVET_CA_FINGERPRINT),
    env,
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

/**
 * The bootstrap secret: RIVET_BOOTSTRAP_SECRET, its _FILE form, or the legacy MESH_SECRET (with a
 * deprecation warning through `warn`). Never logged; returned only to the caller that compares it.
 */
export function bootstrapSecret(env: Env, warn: (msg: string) => void = () => {}): string | undefined {
  if (nonEmpty(env.RIVET_BOOTSTRAP_SECRET)) return env.RIVET_BOOTSTRAP_SECRET;
  const file = nonEmpty(env.RIVET_BOOTSTRAP_SECRET_FILE);
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      throw new UsageError(
        `RIVET_BOOTSTRAP_SECRET_FILE ${show(file)} cannot be read — check the path and its permissions`,
      );
    }
    const secret = text.replace(/\r?\n$/, '');
    if (!secret) throw new UsageError(`RIVET_BOOTSTRAP_SECRET_FILE ${show(file)} is empty`);
    return secret;
  }
  if (nonEmpty(env.MESH_SECRET)) {
    warn('MESH_SECRET is deprecated — rename it to RIVET_BOOTSTRAP_SECRET (or use RIVET_BOOTSTRAP_SECRET_FILE)');
    return env.MESH_SECRET;
  }
  return undefined;
}
