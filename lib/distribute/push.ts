// CRL push from the CA host (DESIGN §5): after a revocation, POST the bundle to every node that
// holds a valid node certificate, over mTLS with the CA host's own node cert, all in parallel with
// a short deadline. Each node gets its own line in the report; a node that misses the push
// catches up by pull (crl-pull.ts). Nothing here can undo the revocation that came before it.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import type { Config } from '../sys/config.ts';
import { readDb, isLive } from '../ca/database.ts';
import { identityFromCommonName, type NodeId } from '../core/identity.ts';
import { RivetError, UsageError, show } from '../core/errors.ts';
import { loadMeshTls, meshClientOptions } from '../mesh/tls.ts';
import { meshRequest, parseConnectTo, type ConnectTo } from './mesh-request.ts';
import { caHostOf, installCaTrust } from './local-trust.ts';

/**
 * One node's answer; a refusal carries the receiver's `code` (e.g. crl_rollback) and its message.
 * A 200 carries `crls`: the crlNumber of each CA the node now holds (its acknowledgement).
 */
export type PushResult = {
  node: NodeId;
  url: string;
  ok: boolean;
  status?: number;
  code?: string;
  ms: number;
  message: string;
  crls?: Array<{ issuer: string; crlNumber: string }>;
};
export type PushOptions = {
  /** Node dir of the CA host: its node.crt/node.key authenticate the push. */
  nodeDir: string;
  /** RIVET_CRL_PUSH_URL, e.g. https://{node}.{domain}:3000/api/mesh/crl */
  template: string;
  connectTo?: ConnectTo;
  timeoutMs?: number;
};

/** Fills `{node}` and `{domain}`; any other placeholder is an error, not a literal. */
export function pushUrl(template: string, node: NodeId, domain: string): string {
  const unknown = template.match(/\{(?!node\}|domain\})[^}]*\}/);
  if (unknown)
    throw new UsageError(
      `RIVET_CRL_PUSH_URL ${show(template)} has unknown placeholder ${unknown[0]} — use {node} and {domain}`,
    );
  const url = template.replaceAll('{node}', node).replaceAll('{domain}', domain);
  if (!url.startsWith('https://'))
    throw new UsageError(`RIVET_CRL_PUSH_URL ${show(template)} must start with https:// — the push is mTLS`);
  return url;
}

/** Node ids holding a live (unexpired, unrevoked) node certificate, from every intermediate. */
export async function pushTargets(ca: Ca): Promise<NodeId[]> {
  const nodes = new Set<NodeId>();
  for (const issuer of await ca.store.intermediates()) {
    for (const e of await readDb(issuer.dir)) {
      if (!isLive(e)) continue;
      try {
        const id = identityFromCommonName(e.cn, ca.domain);
        if (id.kind === 'node') nodes.add(id.nodeId);
      } catch {
        /* not an identity of ours (e.g. an odd legacy row): nothing to push to */
      }
    }
  }
  return [...nodes].sort();
}

/** The receiver's `crls` (install.ts CrlSummary), keeping only well-formed entries. */
function acknowledged(value: unknown): PushResult['crls'] {
  if (!Array.isArray(value)) return undefined;
  return value
    .filter(
      (c): c is { issuer: string; crlNumber: string } =>
        typeof c?.issuer === 'string' && typeof c?.crlNumber === 'string' && /^\d{1,40}$/.test(c.crlNumber),
    )
    .map((c) => ({ issuer: c.issuer.slice(0, 200), crlNumber: c.crlNumber }));
}

async function pushOne(
  node: NodeId,
  url: string,
  body: string,
  opts: PushOptions,
  tls: ReturnType<typeof meshClientOptions>,
): Promise<PushResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const res = await meshRequest(url, {
      method: 'POST',
      body,
      tls,
      connectTo: opts.connectTo,
      timeoutMs: opts.timeoutMs ?? 3000,
      maxBytes: 64 * 1024,
    });
    let message = `HTTP ${res.status}`;
    let code: string | undefined;
    let crls: PushResult['crls'];
    try {
      const json = JSON.parse(res.body) as {
        reason?: string;
        kept?: Array<{ ca: string }>;
        crls?: unknown;
        error?: { code?: string; message?: string };
      };
      code = typeof json.error?.code === 'string' ? json.error.code : undefined;
      if (res.status === 200) crls = acknowledged(json.crls);
      message = json.error?.message
        ? `HTTP ${res.status} ${code ?? ''}: ${json.error.message}`
        : (json.reason ?? message);
      if (json.kept?.length) message += ` (kept ${json.kept.map((k) => k.ca).join(', ')}: still in use there)`;
    } catch {
      /* not JSON: keep the status line */
    }
    return {
      node,
      url,
      ok: res.status === 200,
      status: res.status,
      ...(code ? { code } : {}),
      ...(crls ? { crls } : {}),
      ms: ms(),
      message,
    };
  } catch (err) {
    return { node, url, ok: false, ms: ms(), message: (err as Error).message };
  }
}

/** The CA host's own node dir, updated in place: it is the first node a revocation reaches. */
async function installOnHost(ca: Ca, host: NodeId, nodeDir: string): Promise<PushResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const url = `file://${path.resolve(nodeDir)}`;
  try {
    const r = await installCaTrust(ca, nodeDir);
    return {
      node: host,
      url,
      ok: true,
      ms: ms(),
      message: r.installed ? "installed in the CA host's node dir" : 'unchanged',
      crls: r.crls.map((c) => ({ issuer: c.issuer, crlNumber: c.crlNumber })),
    };
  } catch (err) {
    return {
      node: host,
      url,
      ok: false,
      ...(err instanceof RivetError ? { code: err.code } : {}),
      ms: ms(),
      message: (err as Error).message,
    };
  }
}

/**
 * Pushes the CA's current crl.pem and chain to `nodes` (default: every node with a live node
 * cert). The CA host's own node dir (`rivet-ca host`) is updated first, in place: the push then
 * authenticates with current material, and the host is counted like any other node.
 */
export async function pushCrl(ca: Ca, opts: PushOptions, nodes?: readonly NodeId[]): Promise<PushResult[]> {
  const host = await caHostOf(ca, opts.nodeDir);
  const wanted = nodes ?? (await pushTargets(ca));
  const local = host && wanted.includes(host) ? [await installOnHost(ca, host, opts.nodeDir)] : [];
  const targets = wanted.filter((n) => n !== host);
  if (targets.length === 0) return local;
  const urls = targets.map((n) => pushUrl(opts.template, n, ca.domain));
  // The chain rides along: after rotate-intermediate a node's rivet-ca.crt lacks the new
  // intermediate, and only with it can the node verify (and so accept) the new bundle.
  const body = `${await fsp.readFile(ca.store.chainFile, 'utf8')}${await fsp.readFile(ca.store.crlBundle, 'utf8')}`;
  let tls;
  try {
    tls = meshClientOptions(loadMeshTls({ dir: opts.nodeDir, domain: ca.domain }));
  } catch (err) {
    const message = `cannot push: ${(err as Error).message}`;
    return [...local, ...targets.map((node, i) => ({ node, url: urls[i]!, ok: false, ms: 0, message }))];
  }
  return [...local, ...(await Promise.all(targets.map((node, i) => pushOne(node, urls[i]!, body, opts, tls))))];
}

/** Push settings from configuration: RIVET_NODE_DIR, RIVET_CRL_PUSH_URL, RIVET_CRL_PUSH_CONNECT_TO. */
export function pushOptionsFrom(config: Config, domain: string = config.domain): PushOptions {
  pushUrl(config.crlPushUrl, 'x' as NodeId, domain); // a bad template is a usage error now, not per node later
  return {
    nodeDir: config.nodeDir,
    template: config.crlPushUrl,
    connectTo: parseConnectTo(config.env.RIVET_CRL_PUSH_CONNECT_TO),
  };
}
