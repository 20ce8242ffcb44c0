// Mesh test kit: a fresh CA made with the real CLI, node dirs laid out as DESIGN §2 says, a mesh
// server built only from the public library, and a probe that opens a brand-new TLS connection
// (agent: false) so every call is a full handshake against the server's current context.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { cli, tempDir, type CliResult } from './ca.ts';
import {
  loadMeshTls,
  meshServerOptions,
  meshClientOptions,
  watchMeshTls,
  crlReceiver,
  peerIdentity,
  attachSession,
  MeshAuthError,
  type MeshTls,
} from '../../lib/index.ts';

export type Kit = {
  home: string;
  caDir: string;
  cli: (args: string[], env?: Record<string, string>) => Promise<CliResult>;
  /**
   * Lays out <home>/nodes/<node> from issued/ and returns its path, with the node.json provision-ct
   * writes: `caHost` (who may push CRLs) is ct110 unless given.
   */
  nodeDir: (node: string, agents?: string[], opts?: { caHost?: string | null }) => Promise<string>;
};

function must(r: CliResult, what: string): CliResult {
  if (r.exitCode !== 0) throw new Error(`${what} failed (${r.exitCode}): ${r.stderr}${r.stdout}`);
  return r;
}

export async function makeKit(identities: string[], home?: string): Promise<Kit> {
  const root = home ?? (await tempDir('rivet-mesh-'));
  const caDir = path.join(root, 'ca');
  const run = (args: string[], env: Record<string, string> = {}) => cli(caDir, args, { env });
  must(await run(['init']), 'init');
  must(await run(['issue-intermediate']), 'issue-intermediate');
  if (identities.length) {
    const roster = path.join(root, 'roster.txt');
    await fsp.writeFile(roster, `${identities.join('\n')}\n`);
    must(await run(['issue', '--roster', roster]), 'issue --roster');
  }
  const nodeDir = async (node: string, agents: string[] = [], opts: { caHost?: string | null } = {}) => {
    const dir = path.join(root, 'nodes', node);
    await fsp.mkdir(path.join(dir, 'agents'), { recursive: true, mode: 0o700 });
    const copy = (from: string, to: string) => fsp.copyFile(path.join(caDir, from), path.join(dir, to));
    await copy(`issued/${node}.key`, 'node.key');
    await copy(`issued/${node}.crt`, 'node.crt');
    await copy('intermediate/chain.pem', 'rivet-ca.crt');
    await copy('crl.pem', 'crl.pem');
    for (const a of agents) {
      await copy(`issued/${a}@${node}.key`, `agents/${a}.key`);
      await copy(`issued/${a}@${node}.crt`, `agents/${a}.crt`);
    }
    const rootCert = new X509Certificate(await fsp.readFile(path.join(caDir, 'root', 'ca.crt')));
    const caHost = opts.caHost === undefined ? 'ct110' : opts.caHost;
    await fsp.writeFile(
      path.join(dir, 'node.json'),
      `${JSON.stringify(
        {
          nodeId: node,
          domain: 'mesh',
          datahub: 'https://ct110.mesh:8443',
          caFingerprint: `sha256:${rootCert.fingerprint256.replace(/:/g, '').toLowerCase()}`,
          agents,
          sans: [],
          ...(caHost === null ? {} : { caHost }),
        },
        null,
        2,
      )}\n`,
    );
    return dir;
  };
  return { home: root, caDir, cli: run, nodeDir };
}

export type MeshServer = {
  port: number;
  dir: string;
  reloads: () => number;
  errors: Error[];
  tlsErrors: string[];
  refusals: Array<{ code?: string; from?: string }>;
  close: () => Promise<void>;
};

/** A mesh server as a service would write it: whoami, session.attach, the CRL push endpoint. */
export async function startMeshServer(
  dir: string,
  opts: { port?: number; legacyClients?: boolean; allowFrom?: string[] } = {},
): Promise<MeshServer> {
  const refusals: MeshServer['refusals'] = [];
  const receive = crlReceiver({
    dir,
    allowFrom: opts.allowFrom,
    onRefused: (err, info) => refusals.push({ code: (err as { code?: string }).code, from: info.from }),
  });
  const server = https.createServer(
    meshServerOptions(loadMeshTls({ dir }), { legacyClients: opts.legacyClients }),
    (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      if (url.pathname === '/api/mesh/crl') return receive(req, res);
      try {
        const socket = req.socket as TLSSocket;
        const body =
          url.pathname === '/attach' ? attachSession(socket, url.searchParams.get('as') ?? '') : peerIdentity(socket);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      } catch (err) {
        const status = err instanceof MeshAuthError ? err.status : 500;
        res
          .writeHead(status, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: (err as Error).message }));
      }
    },
  );
  let reloads = 0;
  const errors: Error[] = [];
  // Why the server refused a handshake: with TLS 1.3 the client often sees only a reset.
  const tlsErrors: string[] = [];
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => tlsErrors.push(`${err.code ?? ''} ${err.message}`));
  // `reset`: these suites pin "refused at the handshake" (no HTTP answer); mesh-cut.test covers `explain`.
  const stop = watchMeshTls(server, {
    dir,
    refusals: 'reset',
    onReload: () => {
      reloads++;
    },
    onError: (e) => errors.push(e),
    logger: (e) => tlsErrors.push(`${e.event} ${e.code} ${e.reason}`),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    dir,
    reloads: () => reloads,
    errors,
    tlsErrors,
    refusals,
    close: () =>
      new Promise<void>((resolve) => {
        stop();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type Probe =
  | { ok: true; status: number; json: any; socket: { protocol: string | null; cert?: string } }
  | { ok: false; error: string };

/** One request on a new connection; a refused handshake comes back as { ok: false, error }. */
export function probe(
  port: number,
  client: MeshTls | Record<string, unknown>,
  pathName = '/whoami',
  extra: Record<string, unknown> = {},
): Promise<Probe> {
  const tlsOpts =
    'crl' in client && 'domain' in client ? meshClientOptions(client as MeshTls, { servername: undefined }) : client;
  const { body, ...rest } = extra;
  return new Promise((resolve) => {
    const req = https.request(
      {
        ...tlsOpts,
        host: '127.0.0.1',
        port,
        path: pathName,
        method: 'GET',
        agent: false,
        servername: (extra.servername as string) ?? 'ct111.mesh',
        signal: AbortSignal.timeout(5000),
        ...rest,
      },
      (res) => {
        const chunks: Buffer[] = [];
        const sock = res.socket as TLSSocket;
        const info = { protocol: sock.getProtocol?.() ?? null, cert: sock.getPeerX509Certificate?.()?.serialNumber };
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ ok: true, status: res.statusCode ?? 0, json, socket: info });
        });
      },
    );
    req.on('error', (err) =>
      resolve({ ok: false, error: `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` }),
    );
    req.end(body as string | undefined);
  });
}

export const readText = (file: string) => fs.readFileSync(file, 'utf8');
