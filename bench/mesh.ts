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
  for (const a of agents) { copy(`issued/${a}@${node}.key`, `agents/${a}.key`); copy(`issued/${a}@${node}.crt`, `agents/${a}.crt`); }
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

export type Revocation = { victims: number; revokeMs: number; enforcedAfterReturnMs: number; enforcedAfterStartMs: number; available: boolean; note?: string };

export async function revocation(work: string, victims: number): Promise<Revocation> {
  const lib = await import(path.join(SNAP, 'lib', 'index.ts')).catch(() => undefined);
  if (!lib?.crlReceiver || !lib?.watchMeshTls) return { victims: 0, revokeMs: NaN, enforcedAfterReturnMs: NaN, enforcedAfterStartMs: NaN, available: false, note: 'mesh library (issue 5) not present' };
  const home = fresh(path.join(work, 'revocation'));
  const agents = Array.from({ length: victims }, (_, i) => `v${i}`);
  const caDir = newCa(home, ['ct110', ...NODES, ...agents.map((a) => `${a}@ct201`)]);
  const hub = nodeDir(caDir, home, 'ct110');
  const servers: Array<{ node: string; port: number; close: () => void }> = [];
  for (const node of NODES) {
    const dir = nodeDir(caDir, home, node, node === 'ct201' ? agents : []);
    const receive = lib.crlReceiver({ dir, allowFrom: ['ct110'] }); // the CA host pushes (node dirs made here have no node.json)
    const server = https.createServer(lib.meshServerOptions(lib.loadMeshTls({ dir })), (req, res) => {
      if (req.url === '/api/mesh/crl') return receive(req, res);
      res.writeHead(200).end('ok');
    });
    server.on('tlsClientError', () => {});
    const stop = lib.watchMeshTls(server, { dir });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push({ node, port: (server.address() as { port: number }).port, close: () => { stop(); server.closeAllConnections(); server.close(); } });
  }
  const connectTo = servers.map((s) => `${s.node}.mesh:3000:127.0.0.1:${s.port}`).join(',');
  const victimTls = agents.map((a) => lib.loadMeshTls({ dir: path.join(home, 'nodes', 'ct201'), agent: a }));
  const accepts = (s: { node: string; port: number }, who: any) => new Promise<boolean>((resolve) => {
    const req = https.request({ ...lib.meshClientOptions(who), host: '127.0.0.1', port: s.port, servername: `${s.node}.mesh`, agent: false, path: '/' }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode === 200)); });
    req.on('error', () => resolve(false));
    req.end();
  });
  const after: number[] = [], fromStart: number[] = [], took: number[] = [];
  try {
    for (const [i, a] of agents.entries()) {
      for (const s of servers) if (!(await accepts(s, victimTls[i]))) throw new Error(`${s.node} refuses ${a} before revocation`);
      const t0 = performance.now();
      // Asynchronously: the five servers live in this process and must answer the push.
      const r = await execa(CLI, ['revoke', `${a}@ct201`], { env: baseEnv(caDir, { RIVET_NODE_DIR: hub, RIVET_CRL_PUSH_CONNECT_TO: connectTo, RIVET_CRL_PUSH_URL: 'https://{node}.{domain}:3000/api/mesh/crl' }), reject: false });
      if (process.env.BENCH_DEBUG || !/push: 5\//.test(r.stdout)) log(`revoke ${a}@ct201 (exit ${r.exitCode}): ${r.stdout}${r.stderr}`);
      const t1 = performance.now();
      // Each server: fresh handshakes until it refuses; the slowest one counts.
      const refusedAt = await Promise.all(servers.map(async (s) => {
        for (;;) {
          if (!(await accepts(s, victimTls[i]))) return performance.now();
          if (performance.now() - t1 > 30_000) return Infinity;
          await new Promise((r) => setTimeout(r, 5));
        }
      }));
      const last = Math.max(...refusedAt);
      took.push(t1 - t0); after.push(Math.max(0, last - t1)); fromStart.push(last - t0);
    }
  } finally { for (const s of servers) s.close(); }
  return { victims, revokeMs: median(took), enforcedAfterReturnMs: Math.max(...after), enforcedAfterStartMs: Math.max(...fromStart), available: true };
}

export type Handshakes = { none: number; crl10k: number; crlEntries: number; seconds: number };

/** A signed CRL with `n` synthetic revoked serials: the intermediate's database copied aside. */
async function bigCrl(caDir: string, out: string, n: number): Promise<string> {
  const { generateCrl } = await import(path.join(SNAP, 'lib', 'sign', 'signer.ts'));
  const scratch = path.join(out, 'crl-db');
  fs.cpSync(path.join(caDir, 'intermediate'), scratch, { recursive: true });
  const revokedAt = '250101000000Z';
  const rows = Array.from({ length: n }, (_, i) => `R\t350101000000Z\t${revokedAt},keyCompromise\t${randomBytes(16).toString('hex').toUpperCase()}\tunknown\t/CN=gone${i}@ct301\n`).join('');
  fs.appendFileSync(path.join(scratch, 'index.txt'), rows);
  const pem: string = await generateCrl({ kind: 'intermediate', dir: scratch, cert: path.join(scratch, 'int.crt'), key: path.join(scratch, 'int.key'), crl: '', generation: 1 }, 168, 'sha256');
  const file = path.join(out, 'crl-10k.pem');
  fs.writeFileSync(file, pem);
  return file;
}

async function handshakeRate(port: number, client: tls.ConnectionOptions, seconds: number, concurrency: number): Promise<number> {
  let count = 0;
  const end = performance.now() + seconds * 1000;
  const one = () => new Promise<void>((resolve, reject) => {
    const s = tls.connect({ ...client, host: '127.0.0.1', port }, () => { s.destroy(); resolve(); });
    s.on('error', reject);
  });
  await Promise.all(Array.from({ length: concurrency }, async () => { while (performance.now() < end) { await one(); count++; } }));
  return count / seconds;
}

export async function handshakes(work: string, entries: number, seconds: number): Promise<Handshakes> {
  const home = fresh(path.join(work, 'handshakes'));
  const caDir = newCa(home, ['ct301', 'bench@ct301']);
  const dir = nodeDir(caDir, home, 'ct301', ['bench']);
  const big = await bigCrl(caDir, home, entries);
  const rootCrl = path.join(caDir, 'root', 'crl.pem');
  const read = (f: string) => fs.readFileSync(path.join(dir, f));
  const client: tls.ConnectionOptions = { key: read('agents/bench.key'), cert: read('agents/bench.crt'), ca: read('rivet-ca.crt'), servername: 'ct301.mesh', minVersion: 'TLSv1.3' };
  const rate = async (crls: string[]) => {
    const server = execa(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'bench', 'tls-server.mts'), dir, ...crls], { reject: false });
    const port = await new Promise<number>((resolve, reject) => {
      server.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      server.catch(reject);
    });
    try { return await handshakeRate(port, client, seconds, 8); } finally { server.kill('SIGTERM'); await server; }
  };
  const none: number[] = [], crl: number[] = [];
  for (let round = 0; round < 2; round++) { none.push(await rate([])); crl.push(await rate([big, rootCrl])); }
  log(`handshakes: none ${none.map(Math.round).join('/')}, 10k CRL ${crl.map(Math.round).join('/')} per s`);
  return { none: median(none), crl10k: median(crl), crlEntries: entries, seconds: seconds * 2 };
}
