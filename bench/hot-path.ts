// The hot path of a mesh server (issue 16): a server built from the library — meshServerOptions +
// peerIdentity + authorize on every request — against a bare node:https server with the same
// certificates and CRLs, side by side in one run: keep-alive requests/s and fresh handshakes/s
// (a new TLS connection and one request each), 3 rounds alternating, medians, ratio lib / bare.
// The server runs in its own process (`--serve`), so the load generator does not share its CPU.
// Standalone: `node_modules/.bin/tsx bench/hot-path.ts [seconds]`; bench/run.mts runs it as row 7.
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { Pool } from 'undici';
import { ROOT, SNAP, baseEnv, fresh, log, median, must } from './common.ts';

export type HotPath = {
  keepAlive: { bare: number; lib: number };
  handshakes: { bare: number; lib: number };
  rounds: number;
  seconds: number;
};

const read = (dir: string, f: string) => fs.readFileSync(path.join(dir, f));
/** Node's tls reads only the first CRL of a PEM: both servers get the bundle as an array. */
const crlArray = (dir: string) =>
  read(dir, 'crl.pem')
    .toString()
    .match(/-----BEGIN X509 CRL-----[\s\S]*?-----END X509 CRL-----\n?/g)!
    .map((c) => Buffer.from(c));

/** The server process: `--serve bare|lib <node-dir> <lib-dir>`; prints its port. */
async function serve(mode: string, dir: string, libDir: string): Promise<void> {
  let server: https.Server;
  if (mode === 'bare') {
    server = https.createServer(
      {
        key: read(dir, 'node.key'),
        cert: read(dir, 'node.crt'),
        ca: read(dir, 'rivet-ca.crt'),
        crl: crlArray(dir),
        minVersion: 'TLSv1.3',
        requestCert: true,
        rejectUnauthorized: true,
      },
      (_req, res) => res.end('ok'),
    );
  } else {
    const lib = await import(path.join(libDir, 'index.ts'));
    const allow = lib.allowListFrom({ 'bench@ct301': ['bench.read'] });
    server = https.createServer(lib.meshServerOptions(lib.loadMeshTls({ dir })), (req, res) => {
      lib.authorize(lib.peerIdentity(req.socket), 'bench.read', allow);
      res.end('ok');
    });
  }
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
  process.on('SIGTERM', () => process.exit(0));
}

type Client = { key: Buffer; cert: Buffer; ca: Buffer };

async function keepAliveRate(port: number, c: Client, seconds: number, connections: number): Promise<number> {
  const pool = new Pool(`https://127.0.0.1:${port}`, {
    connections,
    connect: { ...c, servername: 'ct301.mesh', minVersion: 'TLSv1.3' },
  });
  let count = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections * 2 }, async () => {
      while (performance.now() < end) {
        const r = await pool.request({ path: '/', method: 'GET' });
        await r.body.text();
        if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
        count++;
      }
    }),
  );
  await pool.close();
  return count / seconds;
}

async function handshakeRate(port: number, c: Client, seconds: number, concurrency: number): Promise<number> {
  let count = 0;
  const end = performance.now() + seconds * 1000;
  // agent: false — a new connection and a full handshake each time (no session reuse).
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = https.request(
        { ...c, host: '127.0.0.1', port, servername: 'ct301.mesh', minVersion: 'TLSv1.3', agent: false, path: '/' },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end();
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

/** A CA made with the CLI, and node ct301 with agent bench@ct301 laid out as DESIGN §2 says. */
function setup(home: string, cli: string): string {
  const caDir = path.join(home, 'ca');
  must(cli, ['init'], { env: baseEnv(caDir) });
  must(cli, ['issue-intermediate'], { env: baseEnv(caDir) });
  for (const id of ['ct301', 'bench@ct301'])
    must(cli, [id.includes('@') ? 'issue-agent' : 'issue-node', id], { env: baseEnv(caDir) });
  const dir = path.join(home, 'ct301');
  fs.mkdirSync(path.join(dir, 'agents'), { recursive: true, mode: 0o700 });
  const copy = (from: string, to: string) => fs.copyFileSync(path.join(caDir, from), path.join(dir, to));
  copy('issued/ct301.key', 'node.key');
  copy('issued/ct301.crt', 'node.crt');
  copy('intermediate/chain.pem', 'rivet-ca.crt');
  copy('crl.pem', 'crl.pem');
  copy('issued/bench@ct301.key', 'agents/bench.key');
  copy('issued/bench@ct301.crt', 'agents/bench.crt');
  return dir;
}

export async function hotPath(work: string, seconds: number, rounds = 3): Promise<HotPath> {
  const src = fs.existsSync(path.join(SNAP, 'lib', 'index.ts')) ? SNAP : ROOT;
  const dir = setup(fresh(path.join(work, 'hot-path')), path.join(src, 'scripts', 'rivet-ca.mts'));
  const client: Client = {
    key: read(dir, 'agents/bench.key'),
    cert: read(dir, 'agents/bench.crt'),
    ca: read(dir, 'rivet-ca.crt'),
  };
  const measure = async (mode: 'bare' | 'lib') => {
    const child = execa(
      path.join(ROOT, 'node_modules', '.bin', 'tsx'),
      [fileURLToPath(import.meta.url), '--serve', mode, dir, path.join(src, 'lib')],
      { reject: false },
    );
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.catch(reject);
    });
    try {
      await keepAliveRate(port, client, 0.5, 8); // warm-up: JIT, first handshakes
      return {
        keepAlive: await keepAliveRate(port, client, seconds, 8),
        handshakes: await handshakeRate(port, client, seconds, 8),
      };
    } finally {
      child.kill('SIGTERM');
      await child;
    }
  };
  const runs: Record<'bare' | 'lib', Array<{ keepAlive: number; handshakes: number }>> = { bare: [], lib: [] };
  for (let r = 0; r < rounds; r++) {
    for (const mode of r % 2 ? (['lib', 'bare'] as const) : (['bare', 'lib'] as const))
      runs[mode].push(await measure(mode));
  }
  const med = (mode: 'bare' | 'lib', k: 'keepAlive' | 'handshakes') => median(runs[mode].map((x) => x[k]));
  log(
    `hot path: keep-alive bare ${runs.bare.map((x) => Math.round(x.keepAlive)).join('/')} lib ${runs.lib.map((x) => Math.round(x.keepAlive)).join('/')} req/s; handshakes bare ${runs.bare.map((x) => Math.round(x.handshakes)).join('/')} lib ${runs.lib.map((x) => Math.round(x.handshakes)).join('/')} per s`,
  );
  return {
    keepAlive: { bare: med('bare', 'keepAlive'), lib: med('lib', 'keepAlive') },
    handshakes: { bare: med('bare', 'handshakes'), lib: med('lib', 'handshakes') },
    rounds,
    seconds,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--serve') {
    await serve(process.argv[3]!, process.argv[4]!, process.argv[5]!);
  } else {
    const h = await hotPath(path.join(ROOT, 'bench', 'out', 'work'), Number(process.argv[2] ?? 3));
    const row = (what: string, x: { bare: number; lib: number }, target: number) =>
      `${what}: lib ${x.lib.toFixed(0)}/s, bare node:https ${x.bare.toFixed(0)}/s, ${(x.lib / x.bare).toFixed(2)}× (target ≥ ${target}×: ${x.lib / x.bare >= target ? 'met' : 'missed'})`;
    process.stdout.write(
      `${row('keep-alive requests', h.keepAlive, 0.9)}\n${row('fresh handshakes', h.handshakes, 0.95)}\n(${h.rounds} rounds of ${h.seconds} s each, medians)\n`,
    );
  }
}
