// A node's enrollment settings (DESIGN §6 step 3): which datahub, which pinned root, which identity.
// Written last by `provision-ct enroll`, read by renew / fetch-crl / status, so later runs need no
// flags. No secret is ever stored here — the bootstrap secret is used once and forgotten.
import net from 'node:net';
import path from 'node:path';
import { UsageError, RivetError, show } from '../core/errors.ts';
import { PUBLIC_MODE, readText, writeAtomic } from '../sys/files.ts';
import { agentId, meshDomain, nodeId, type AgentId, type MeshDomain, type NodeId } from '../core/identity.ts';
import type { ConnectTo } from '../distribute/mesh-request.ts';
import { CA_HOST_FIELD, NODE_SETTINGS_FILE } from '../distribute/push-sender.ts';

export const SETTINGS_FILE = NODE_SETTINGS_FILE;

export type NodeSettings = {
  nodeId: NodeId;
  domain: MeshDomain;
  /** Base URL of the enrollment service as given, e.g. https://ct110.mesh:8443. */
  datahub: string;
  /** Name the datahub's certificate must carry when `datahub` names it by address. */
  servername?: string;
  /** `sha256:<64 hex>`, lower case. */
  caFingerprint: string;
  agents: AgentId[];
  sans: string[];
  /**
   * The CA host: the node whose certificate answered the pinned first contact. The only sender
   * crlReceiver accepts pushes from unless given `allowFrom` (lib/distribute/push-sender.ts).
   */
  caHost?: NodeId;
};

/** `sha256:AB:CD…`, `AB:CD…` or `abcd…` → `sha256:abcd…` (what `rivet-ca status` prints). */
export function normalizeFingerprint(text: string): string {
  const hex = String(text)
    .trim()
    .replace(/^sha256(?:\s*fingerprint)?\s*[:=]\s*/i, '')
    .replace(/:/g, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new UsageError(
      `--ca-fingerprint ${show(text)} must be the root's SHA-256, like sha256:3f2a…(64 hex digits) — \`rivet-ca status\` on the CA host prints it`,
    );
  }
  return `sha256:${hex}`;
}

/** The datahub base URL: https only, no credentials, no query; a trailing path is kept as a prefix. */
export function datahubUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(String(text));
  } catch {
    throw new UsageError(`--datahub ${show(text)} is not a URL — give one like https://ct110.mesh:8443`);
  }
  if (u.protocol !== 'https:')
    throw new UsageError(`--datahub ${show(text)} must be https:// — the bootstrap secret travels over TLS only`);
  if (u.username || u.password || u.search || u.hash)
    throw new UsageError(`--datahub ${show(text)} must not carry credentials, a query or a fragment`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function servername(text: string | undefined): string | undefined {
  if (text === undefined || text === '') return undefined;
  if (!HOST_NAME.test(text))
    throw new UsageError(`--servername ${show(text)} must be a lower-case DNS name like ct110.mesh`);
  return text;
}

/**
 * The datahub must be tied to a name before the bootstrap secret goes to it. An address (or
 * localhost) proves nothing: any node may carry a loopback address or localhost, and before the
 * ownership index (lib/policy/name-ownership.ts) a node could carry another's IP — issue 14's
 * ct112 held IP:10.0.0.111 and was taken for the datahub there. A mesh name is exclusive to one
 * live node, so --servername names the datahub's certificate and the address is only where to
 * connect. (Pinning the first contact's certificate instead would trust whoever answers first.)
 */
export function requireDatahubName(s: Pick<NodeSettings, 'datahub' | 'servername'>): void {
  if (s.servername) return;
  const host = new URL(s.datahub).hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host) || host === 'localhost' || host.endsWith('.localhost')) {
    throw new UsageError(
      `--datahub ${show(s.datahub)} names the datahub by address — add --servername <its node name>, e.g. --servername ct110.mesh, so the secret goes only to the certificate carrying that name`,
      'datahub_unnamed',
    );
  }
}

export type Endpoint = { base: string; connectTo?: ConnectTo };

/**
 * Where requests go. With a servername, the URL is rewritten to that name (so SNI and the host
 * check use it) and the TCP connection still goes to the address given — curl's --connect-to.
 */
export function endpointOf(s: Pick<NodeSettings, 'datahub' | 'servername'>): Endpoint {
  if (!s.servername) return { base: s.datahub };
  const u = new URL(s.datahub);
  const port = Number(u.port || 443);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const base = `https://${s.servername}:${port}${u.pathname.replace(/\/+$/, '')}`;
  return { base, connectTo: new Map([[`${s.servername}:${port}`, { host, port }]]) };
}

export const settingsPath = (dir: string) => path.join(dir, SETTINGS_FILE);

export async function readSettings(dir: string): Promise<NodeSettings | undefined> {
  const text = await readText(settingsPath(dir));
  if (text === undefined) return undefined;
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    return {
      nodeId: nodeId(String(raw.nodeId)),
      domain: meshDomain(String(raw.domain)),
      datahub: datahubUrl(String(raw.datahub)),
      servername: servername(raw.servername === undefined ? undefined : String(raw.servername)),
      caFingerprint: normalizeFingerprint(String(raw.caFingerprint)),
      agents: (Array.isArray(raw.agents) ? raw.agents : []).map((a) => agentId(String(a))),
      sans: (Array.isArray(raw.sans) ? raw.sans : []).map(String),
      ...(raw[CA_HOST_FIELD] === undefined ? {} : { caHost: nodeId(String(raw[CA_HOST_FIELD])) }),
    };
  } catch (err) {
    throw new RivetError(
      `${show(settingsPath(dir))} is unreadable (${(err as Error).message}) — re-run \`provision-ct enroll\` with the full flags to rewrite it`,
      'bad_settings',
    );
  }
}

export async function writeSettings(dir: string, s: NodeSettings): Promise<void> {
  const { servername: name, ...rest } = s;
  await writeAtomic(
    settingsPath(dir),
    `${JSON.stringify({ ...rest, ...(name ? { servername: name } : {}) }, null, 2)}\n`,
    PUBLIC_MODE,
  );
}

export function sameSettings(a: NodeSettings, b: NodeSettings): boolean {
  const key = (s: NodeSettings) =>
    JSON.stringify([
      s.nodeId,
      s.domain,
      s.datahub,
      s.servername ?? '',
      s.caFingerprint,
      [...s.agents].sort(),
      s.sans,
      s.caHost ?? '',
    ]);
  return key(a) === key(b);
}
