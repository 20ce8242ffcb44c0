// Sections 4 and 5: revocation reaching five running mesh servers (built only from the public
// library: meshServerOptions, watchMeshTls, crlReceiver), and handshakes per second with a
// 10,000-entry CRL against none.
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { CLI, ROOT, SNAP, baseEnv, fresh, log, median, must } from './common.ts';

const NODES = ['ct201', 'ct202', 'ct203', 'ct204', 'ct205'];

function nodeDir(caDir: string, home: string, node: string, agents: string[] = []): string {
  const dir = path.join(home, 'nodes', node);
  fs.mkdirSync(path.join(dir, 'agents'), { recursive: true, mode: 0o700 });
  const copy = (from: string, to: string) => fs.copyFileSync(path.join(caDir, from), path.join(dir, to));
  copy(`issued/${node}.key`, 'node.key');
  copy(`issued/${node}.crt`, 'node.crt');
  copy('intermediate/chain.pem', 'rivet-ca.crt');
  copy('crl.pem', 'crl.pem');
  for (const a of agents) {
    copy(`issued/${a}@${node}.key`, `agents/${a}.key`);
    copy(`issued/${a}@${node}.crt`, `agents/${a}.crt`);
  }
  return dir;
}

function newCa(home: string, identities: string[]): string {
  const caDir = path.join(home, 'ca');
  must(CLI, ['init'], { env: baseEnv(caDir) });
  must(CLI, ['issue-intermediate'], { env: baseEnv(caDir) });
  fs.writeFileSync(path.join(home, 'roster.txt'), identities.join('\n') + '\n');
  must(CLI, ['issue', '--roster', path.join(home, 'roster.txt')], { env: baseEnv(caDir) });
  return caDir;
}

export type Revocation = {
  victims: number;
  revokeMs: number;
  enforcedAfterReturnMs: number;
  enforcedAfterStartMs: number;
  available: boolean;
  note?: string;
};

type Cluster = {
  lib: any;
  home: string;
  caDir: string;
  hub: string;
  agents: string[];
  victimTls: any[];
  servers: Array<{ node: string; port: number; close: () => void }>;
  connectTo: string;
  revoke: (agent: string) => Promise<{ startedAt: number; returnedAt: number }>;
  close: () => void;
};

/** A CA, the CA host's node dir, and five mesh servers built only from the public library. */
async function cluster(work: string, name: string, victims: number): Promise<Cluster | undefined> {
  const lib = await import(path.join(SNAP, 'lib', 'index.ts')).catch(() => undefined);
  if (!lib?.crlReceiver || !lib?.watchMeshTls) return undefined;
  const home = fresh(path.join(work, name));
  const agents = Array.from({ length: victims }, (_, i) => `v${i}`);
  const caDir = newCa(home, ['ct110', ...NODES, ...agents.map((a) => `${a}@ct201`)]);
  const hub = nodeDir(caDir, home, 'ct110');
  const servers: Cluster['servers'] = [];
  for (const node of NODES) {
    const dir = nodeDir(caDir, home, node, node === 'ct201' ? agents : []);
    const receive = lib.crlReceiver({ dir, allowFrom: ['ct110'] }); // the CA host pushes (node dirs made here have no node.json)
    const server = https.createServer(lib.meshServerOptions(lib.loadMeshTls({ dir })), (req, res) => {
      if (req.url === '/api/mesh/crl') return receive(req, res);
      res.writeHead(200).end('ok');
    });
    server.keepAliveTimeout = 60_000;
    server.on('tlsClientError', () => {});
    const stop = lib.watchMeshTls(server, { dir, logger: () => {} });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push({
      node,
      port: (server.address() as { port: number }).port,
      close: () => {
        stop();
        server.closeAllConnections();
        server.close();
      },
    });
  }
  const connectTo = servers.map((s) => `${s.node}.mesh:3000:127.0.0.1:${s.port}`).join(',');
  const victimTls = agents.map((a) => lib.loadMeshTls({ dir: path.join(home, 'nodes', 'ct201'), agent: a }));
  const revoke = async (agent: string) => {
    const startedAt = performance.now();
    // Asynchronously: the five servers live in this process and must answer the push.
    const r = await execa(CLI, ['revoke', `${agent}@ct201`], {
      env: baseEnv(caDir, {
        RIVET_NODE_DIR: hub,
        RIVET_CRL_PUSH_CONNECT_TO: connectTo,
        RIVET_CRL_PUSH_URL: 'https://{node}.{domain}:3000/api/mesh/crl',
      }),
      reject: false,
    });
    if (process.env.BENCH_DEBUG || !/push: 5\//.test(r.stdout))
      log(`revoke ${agent}@ct201 (exit ${r.exitCode}): ${r.stdout}${r.stderr}`);
    return { startedAt, returnedAt: performance.now() };
  };
  return {
    lib,
    home,
    caDir,
    hub,
    agents,
    victimTls,
    servers,
    connectTo,
    revoke,
    close: () => {
      for (const s of servers) s.close();
    },
  };
}

export async function revocation(work: string, victims: number): Promise<Revocation> {
  const c = await cluster(work, 'revocation', victims);
  if (!c)
    return {
      victims: 0,
      revokeMs: NaN,
      enforcedAfterReturnMs: NaN,
      enforcedAfterStartMs: NaN,
      available: false,
      note: 'mesh library (issue 5) not present',
    };
  const { lib, servers, agents, victimTls } = c;
  const accepts = (s: { node: string; port: number }, who: any) =>
    new Promise<boolean>((resolve) => {
      const req = https.request(
        {
          ...lib.meshClientOptions(who),
          host: '127.0.0.1',
          port: s.port,
          servername: `${s.node}.mesh`,
          agent: false,
          path: '/',
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
        },
      );
      req.on('error', () => resolve(false));
      req.end();
    });
  const after: number[] = [],
    fromStart: number[] = [],
    took: number[] = [];
  try {
    for (const [i, a] of agents.entries()) {
      for (const s of servers)
        if (!(await accepts(s, victimTls[i]))) throw new Error(`${s.node} refuses ${a} before revocation`);
      const { startedAt: t0, returnedAt: t1 } = await c.revoke(a);
      // Each server: fresh handshakes until it refuses; the slowest one counts.
      const refusedAt = await Promise.all(
        servers.map(async (s) => {
          for (;;) {
            if (!(await accepts(s, victimTls[i]))) return performance.now();
            if (performance.now() - t1 > 30_000) return Infinity;
            await new Promise((r) => setTimeout(r, 5));
          }
        }),
      );
      const last = Math.max(...refusedAt);
      took.push(t1 - t0);
      after.push(Math.max(0, last - t1));
      fromStart.push(last - t0);
    }
  } finally {
    c.close();
  }
  return {
    victims,
    revokeMs: median(took),
    enforcedAfterReturnMs: Math.max(...after),
    enforcedAfterStartMs: Math.max(...fromStart),
    available: true,
  };
}

export type Cut = {
  victims: number;
  connections: number;
  worstMs: number;
  medianMs: number;
  worstAfterReturnMs: number;
  revokeMs: number;
  kept: boolean;
  available: boolean;
  note?: string;
};

/** One open keep-alive connection per server (pooled after a request), then: how long from `revoke` to each one closing? */
function openKeepAlive(
  lib: any,
  s: { node: string; port: number },
  who: any,
): Promise<{ closedAt?: number; agent: https.Agent }> {
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 1,
    ...lib.meshClientOptions(who),
    servername: `${s.node}.mesh`,
  });
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port: s.port, servername: `${s.node}.mesh`, path: '/', agent },
      (res) => {
        const o: { closedAt?: number; agent: https.Agent } = { agent };
        res.socket.once('close', () => {
          o.closedAt = performance.now();
        });
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve(o) : reject(new Error(`${s.node} answered ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
  });
}

/** Section 4b: revoke → cut on open connections, 5 servers; a valid agent's connections must stay. */
export async function cutOnOpen(work: string, victims: number): Promise<Cut> {
  const c = await cluster(work, 'cut', victims + 1);
  if (!c)
    return {
      victims: 0,
      connections: 0,
      worstMs: NaN,
      medianMs: NaN,
      worstAfterReturnMs: NaN,
      revokeMs: NaN,
      kept: false,
      available: false,
      note: 'mesh library not present',
    };
  const { lib, servers, agents, victimTls } = c;
  const bystander = victimTls[victims]; // never revoked: its connections must survive every reload
  const cuts: number[] = [],
    afterReturn: number[] = [],
    took: number[] = [];
  let kept = true;
  try {
    const safe = await Promise.all(servers.map((s) => openKeepAlive(lib, s, bystander)));
    for (let i = 0; i < victims; i++) {
      const open = await Promise.all(servers.map((s) => openKeepAlive(lib, s, victimTls[i])));
      const { startedAt, returnedAt } = await c.revoke(agents[i]!);
      const deadline = performance.now() + 10_000;
      while (open.some((o) => o.closedAt === undefined) && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, 5));
      for (const o of open) {
        cuts.push((o.closedAt ?? Infinity) - startedAt);
        afterReturn.push(Math.max(0, (o.closedAt ?? Infinity) - returnedAt));
        o.agent.destroy();
      }
      took.push(returnedAt - startedAt);
    }
    kept = safe.every((o) => o.closedAt === undefined);
    for (const o of safe) o.agent.destroy();
  } finally {
    c.close();
  }
  return {
    victims,
    connections: cuts.length,
    worstMs: Math.max(...cuts),
    medianMs: median(cuts),
    worstAfterReturnMs: Math.max(...afterReturn),
    revokeMs: median(took),
    kept,
    available: true,
  };
}

export type Handshakes = { none: number; crl10k: number; crlEntries: number; seconds: number };

/** A signed CRL with `n` synthetic revoked serials: the intermediate's database copied aside. */
async function bigCrl(caDir: string, out: string, n: number): Promise<string> {
  const { generateCrl } = await import(path.join(SNAP, 'lib', 'sign', 'signer.ts'));
  const scratch = path.join(out, 'crl-db');
  fs.cpSync(path.join(caDir, 'intermediate'), scratch, { recursive: true });
  const revokedAt = '250101000000Z';
  const rows = Array.from(
    { length: n },
    (_, i) =>
      `R\t350101000000Z\t${revokedAt},keyCompromise\t${randomBytes(16).toString('hex').toUpperCase()}\tunknown\t/CN=gone${i}@ct301\n`,
  ).join('');
  fs.appendFileSync(path.join(scratch, 'index.txt'), rows);
  const pem: string = await generateCrl(
    {
      kind: 'intermediate',
      dir: scratch,
      cert: path.join(scratch, 'int.crt'),
      key: path.join(scratch, 'int.key'),
      crl: '',
      generation: 1,
    },
    168,
    'sha256',
  );
  const file = path.join(out, 'crl-10k.pem');
  fs.writeFileSync(file, pem);
  return file;
}

async function handshakeRate(
  port: number,
  client: tls.ConnectionOptions,
  seconds: number,
  concurrency: number,
): Promise<number> {
  let count = 0;
  const end = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const s = tls.connect({ ...client, host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve();
      });
      s.on('error', reject);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await one();
        count++;
      }
    }),
  );
  return count / seconds;
}

export async function handshakes(work: string, entries: number, seconds: number): Promise<Handshakes> {
  const home = fresh(path.join(work, 'handshakes'));
  const caDir = newCa(home, ['ct301', 'bench@ct301']);
  const dir = nodeDir(caDir, home, 'ct301', ['bench']);
  const big = await bigCrl(caDir, home, entries);
  const rootCrl = path.join(caDir, 'root', 'crl.pem');
  const read = (f: string) => fs.readFileSync(path.join(dir, f));
  const client: tls.ConnectionOptions = {
    key: read('agents/bench.key'),
    cert: read('agents/bench.crt'),
    ca: read('rivet-ca.crt'),
    servername: 'ct301.mesh',
    minVersion: 'TLSv1.3',
  };
  const rate = async (crls: string[]) => {
    const server = execa(
      path.join(ROOT, 'node_modules', '.bin', 'tsx'),
      [path.join(ROOT, 'bench', 'tls-server.mts'), dir, ...crls],
      { reject: false },
    );
    const port = await new Promise<number>((resolve, reject) => {
      server.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      server.catch(reject);
    });
    try {
      return await handshakeRate(port, client, seconds, 8);
    } finally {
      server.kill('SIGTERM');
      await server;
    }
  };
  const none: number[] = [],
    crl: number[] = [];
  for (let round = 0; round < 2; round++) {
    none.push(await rate([]));
    crl.push(await rate([big, rootCrl]));
  }
  log(`handshakes: none ${none.map(Math.round).join('/')}, 10k CRL ${crl.map(Math.round).join('/')} per s`);
  return { none: median(none), crl10k: median(crl), crlEntries: entries, seconds: seconds * 2 };
}
