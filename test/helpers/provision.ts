// provision-ct test kit: a fresh CA (made through the library), the real `rivet-ca serve` process on
// 127.0.0.1:0 with the CA host's node cert, and the real provision-ct script as a child process.
// Every service started here is stopped by the test file that started it.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { spawnServe } from './serve.ts';
import { execa, type ResultPromise } from 'execa';
import type { Ca } from '../../lib/ca/handle.ts';
import { nodeId } from '../../lib/core/identity.ts';
import { issueWithNewKey } from '../../lib/ops/operator-issue.ts';
import { rootFingerprint } from '../../lib/ops/doctor.ts';
import { ROOT, cli, freshCa, tempDir, type CliResult } from './ca.ts';

export const PROVISION = path.join(ROOT, 'scripts', 'provision-ct.mts');
export const SECRET = 'bootstrap secret: do not log me 7f3a';

export type Served = {
  ca: Ca;
  home: string;
  hostDir: string;
  port: number;
  url: string;
  fingerprint: string;
  /** --datahub and --servername for a node: the address to connect to and the name the cert carries. */
  datahubArgs: string[];
  serveLog: () => string;
  provision: (nodeDir: string, args: string[], env?: Record<string, string>) => Promise<CliResult>;
  spawnProvision: (nodeDir: string, args: string[], env?: Record<string, string>) => ResultPromise;
  rivet: (args: string[]) => Promise<CliResult>;
  close: () => Promise<void>;
};

export async function startServed(): Promise<Served> {
  const ca = await freshCa();
  const home = await tempDir('rivet-provision-');
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  const hostDir = path.join(home, 'ct110');
  fs.mkdirSync(hostDir, { mode: 0o700 });
  fs.copyFileSync(ca.store.issued('ct110', 'crt'), path.join(hostDir, 'node.crt'));
  fs.copyFileSync(ca.store.issued('ct110', 'key'), path.join(hostDir, 'node.key'));
  const { child, port, stderr } = await spawnServe({
    env: {
      RIVET_CA_DIR: ca.store.dir,
      RIVET_NODE_DIR: hostDir,
      RIVET_ENV_FILE: '/dev/null',
      RIVET_BOOTSTRAP_SECRET: SECRET,
    },
    execa: { cwd: os.tmpdir() },
  });
  const url = `https://127.0.0.1:${port}`;
  const baseEnv = (nodeDir: string, env: Record<string, string>) => ({
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    RIVET_NODE_DIR: nodeDir,
    RIVET_ENV_FILE: '/dev/null',
    ...env,
  });
  const spawnProvision = (nodeDir: string, args: string[], env: Record<string, string> = {}) =>
    execa(PROVISION, args, { reject: false, env: baseEnv(nodeDir, env), extendEnv: false, cwd: os.tmpdir() });
  return {
    ca,
    home,
    hostDir,
    port,
    url,
    fingerprint: await rootFingerprint(ca),
    datahubArgs: ['--datahub', url, '--servername', 'ct110.mesh'],
    serveLog: stderr,
    spawnProvision,
    provision: async (nodeDir, args, env = {}) => {
      const r = await spawnProvision(nodeDir, args, env);
      return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
    rivet: (args) => cli(ca, args),
    close: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}

export function mustOk(r: CliResult, what: string): CliResult {
  if (r.exitCode !== 0) throw new Error(`${what} failed (exit ${r.exitCode}):\n${r.stdout}${r.stderr}`);
  return r;
}

/** Every regular file under `dir` (relative paths), temp files included. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

export type Seen = { method: string; url: string; authorization?: string };
export type Proxy = { port: number; seen: Seen[]; close: () => Promise<void> };

/** HTTPS server with `cert`/`key` that records each request and forwards it to the service. */
export async function recordingProxy(s: Served, cert: Buffer, key: Buffer, ownChain?: string): Promise<Proxy> {
  const seen: Seen[] = [];
  const server = https.createServer({ cert, key }, (req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    if (ownChain && req.url === '/ca.crt') return void res.writeHead(200).end(ownChain);
    const up = https.request(
      {
        host: '127.0.0.1',
        port: s.port,
        servername: 'ct110.mesh',
        method: req.method,
        path: req.url,
        headers: req.headers,
        rejectUnauthorized: false,
        agent: false,
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
