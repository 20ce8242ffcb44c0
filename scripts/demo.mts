#!/usr/bin/env -S sh -c 'exec node "$(dirname "$(readlink -f "$0")")/launch.mjs" "$0" "$@"'
// `make demo`: the seed's whole story on loopback, in throw-away directories, without root and
// without touching /etc: the CA (root, intermediate, the CA host's node cert), the enrollment
// service in the background, a new node ct111 enrolling with the bootstrap secret (from the
// environment, never argv) and minting agent opus, a mesh server built with lib/ accepting
// opus's mTLS request, `make revoke CN=opus@ct111` pushing the CRL, and the same request refused.
// The CA host's node dir is made by `rivet-ca host` exactly as on a real CA host.
// Names like ct110.mesh do not resolve here: clients connect to 127.0.0.1 and verify the name
// (--servername / RIVET_CRL_PUSH_CONNECT_TO). Every command is printed with its real output; the
// service and the mesh servers are stopped on exit, error or signal.
import { spawn, type ChildProcess } from 'node:child_process';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { $, chalk, fs, os, path } from 'zx';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import {
  loadMeshTls,
  meshServerOptions,
  meshClientOptions,
  watchMeshTls,
  crlReceiver,
  peerIdentity,
  MeshAuthError,
  parseCertPem,
  parseCrlBundle,
  isRevoked,
} from '../lib/index.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rivet = path.join(repo, 'scripts', 'rivet-ca.mts');
const provision = path.join(repo, 'scripts', 'provision-ct.mts');
const home = await fs.mkdtemp(path.join(os.tmpdir(), 'rivet-demo-'));
const caDir = path.join(home, 'ca');
const hostDir = path.join(home, 'ct110'); // the CA host's RIVET_NODE_DIR (would be /etc/rivetos)
const nodeDir = path.join(home, 'ct111'); // the new node's RIVET_NODE_DIR
const secret = randomBytes(18).toString('base64url');
// Nothing from the caller's environment or ./.env decides where the demo writes.
process.env.RIVET_ENV_FILE = '/dev/null';
process.env.RIVET_MESH_DOMAIN = 'mesh';
const baseEnv = { ...process.env, RIVET_CA_DIR: caDir, RIVET_ENV_FILE: '/dev/null', RIVET_MESH_DOMAIN: 'mesh' };
$.verbose = false;

// --- cleanup: whatever happens, nothing is left running --------------------------------------
let serve: ChildProcess | undefined;
const closers: Array<() => Promise<void>> = [];
async function cleanup(): Promise<void> {
  for (const close of closers.splice(0)) await close().catch(() => {});
  if (serve && serve.exitCode === null && serve.signalCode === null) {
    const done = new Promise((resolve) => serve!.once('exit', resolve));
    serve.kill('SIGTERM');
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 5000))]);
    if (serve.exitCode === null && serve.signalCode === null) serve.kill('SIGKILL');
  }
  await fs.remove(home).catch(() => {});
}
process.on('exit', () => {
  if (serve && serve.exitCode === null) serve.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    console.error(chalk.red(`\ndemo: ${sig} — stopping the service and servers`));
    void cleanup().finally(() => process.exit(130));
  });
}
async function fail(message: string): Promise<never> {
  console.error(chalk.red(`demo: ${message}`));
  await cleanup();
  process.exit(1);
}

// --- printing ----------------------------------------------------------------------------------
let step = 0;
const title = (text: string) => console.log(chalk.bold(`\n${++step}. ${text}`));
const shown = (text: string) => text.replaceAll(secret, '****').replaceAll(home, '$DEMO');

/** Runs one command, prints it (`$ …`, with where it runs) and its real output. */
async function show(
  heading: string | undefined,
  prog: string,
  args: string[],
  opts: { env?: Record<string, string>; envNote?: string; expectFail?: boolean; anyExit?: boolean } = {},
): Promise<string> {
  if (heading) title(heading);
  const name = prog === rivet ? 'rivet-ca' : prog === provision ? 'provision-ct' : prog;
  console.log(chalk.cyan(shown(`$ ${opts.envNote ? `${opts.envNote} ` : ''}${name} ${args.join(' ')}`)));
  const r = await $({ env: { ...baseEnv, ...opts.env }, cwd: home })`${prog} ${args}`.nothrow();
  const out = `${r.stdout}${r.stderr}`.trimEnd();
  if (out) console.log(shown(out));
  if (!opts.anyExit && (opts.expectFail ? r.exitCode === 0 : r.exitCode !== 0))
    await fail(`step ${step} ${opts.expectFail ? 'should have failed' : `failed (exit ${r.exitCode})`}`);
  return String(r.stdout);
}

// --- a mesh server as a mesh service would write it, from lib/ only ---------------------------
// Pushes are taken from the CA host alone: ct111 recorded it at enrollment (node.json caHost).
async function meshServer(dir: string): Promise<{ port: number }> {
  const receive = crlReceiver({ dir });
  const server = https.createServer(meshServerOptions(loadMeshTls({ dir })), (req, res) => {
    if (req.url === '/api/mesh/crl') return receive(req, res);
    try {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(peerIdentity(req.socket as TLSSocket)));
    } catch (err) {
      res
        .writeHead(err instanceof MeshAuthError ? err.status : 500)
        .end(JSON.stringify({ error: (err as Error).message }));
    }
  });
  const stop = watchMeshTls(server, { dir });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise((resolve) => {
        stop();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port };
}

/** GET /whoami on ct111's mesh server as `agent` (agents/<agent>.crt), a new handshake each time. */
function whoami(port: number, agent?: string): Promise<string> {
  const tls = meshClientOptions(loadMeshTls({ dir: nodeDir, agent }), { servername: 'ct111.mesh' });
  return new Promise((resolve) => {
    const req = https.request(
      { ...tls, host: '127.0.0.1', port, path: '/whoami', agent: false, signal: AbortSignal.timeout(5000) },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve(`HTTP ${res.statusCode} ${body}`));
      },
    );
    req.on('error', (err) => resolve(`refused: ${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`.trim()));
    req.end();
  });
}

// --- the story ----------------------------------------------------------------------------------
console.log(
  chalk.bold(`rivet-ca demo — everything under ${home} (shown as $DEMO), nothing in /etc, nothing left running`),
);
await show('Create the root (once, ever)', rivet, ['init']);
await show('Sign the intermediate that issues day to day', rivet, ['issue-intermediate']);
await show(
  'Make the CA host (ct110) a node of its own mesh: the enrollment service presents this identity, pushes authenticate with it',
  rivet,
  ['host', 'ct110'],
  { env: { RIVET_NODE_DIR: hostDir }, envNote: 'RIVET_NODE_DIR=$DEMO/ct110' },
);
// `status` exits 1 here because the root key is still online — a demo has no offline ceremony.
const status = await show('The root fingerprint to hand to new nodes', rivet, ['status'], { anyExit: true });
const fingerprint = /sha256:[0-9a-f]{64}/.exec(status)?.[0] ?? (await fail('no root fingerprint in `rivet-ca status`'));

title('Start the enrollment service in the background (bootstrap secret from the environment)');
console.log(
  chalk.cyan(`$ RIVET_NODE_DIR=$DEMO/ct110 RIVET_BOOTSTRAP_SECRET=**** rivet-ca serve --listen 127.0.0.1:0 &`),
);
serve = spawn(rivet, ['serve', '--listen', '127.0.0.1:0'], {
  cwd: home,
  env: { ...baseEnv, RIVET_NODE_DIR: hostDir, RIVET_BOOTSTRAP_SECRET: secret },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let serveErr = '';
serve.stderr!.on('data', (d) => {
  serveErr += d;
});
const port = await new Promise<number>((resolve) => {
  let out = '';
  const timer = setTimeout(() => void fail(`serve did not start: ${shown(serveErr)}`), 60_000);
  serve!.stdout!.on('data', (d) => {
    out += d;
    const m = /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    if (m) {
      clearTimeout(timer);
      serve!.off('exit', died);
      console.log(out.trim());
      resolve(Number(m[1]));
    }
  });
  const died = (code: number | null) => {
    clearTimeout(timer);
    void fail(`serve exited (${code}): ${shown(serveErr)}`);
  };
  serve!.once('exit', died);
});
console.log(`(pid ${serve.pid})`);

const nodeEnv = { RIVET_NODE_DIR: nodeDir, RIVET_BOOTSTRAP_SECRET: secret };
const enrollArgs = [
  'enroll',
  '--node-id',
  'ct111',
  '--datahub',
  `https://127.0.0.1:${port}`,
  '--servername',
  'ct110.mesh',
  '--ca-fingerprint',
  fingerprint,
  '--agent',
  'opus',
];
await show(
  'New node ct111 enrolls: key made locally, root pinned before the secret is sent, agent opus minted over mTLS',
  provision,
  enrollArgs,
  { env: nodeEnv, envNote: 'RIVET_NODE_DIR=$DEMO/ct111 RIVET_BOOTSTRAP_SECRET=****' },
);
await show('Running it again changes nothing', provision, ['enroll'], {
  env: { RIVET_NODE_DIR: nodeDir },
  envNote: 'RIVET_NODE_DIR=$DEMO/ct111',
});
await show('What ct111 has installed', provision, ['status'], {
  env: { RIVET_NODE_DIR: nodeDir },
  envNote: 'RIVET_NODE_DIR=$DEMO/ct111',
});
await show(
  'Renewal is bounded: asking now (--within 90d) for a cert in its first two thirds of life is refused, with the date renewal opens',
  provision,
  ['renew', '--within', '90d'],
  { env: { RIVET_NODE_DIR: nodeDir }, envNote: 'RIVET_NODE_DIR=$DEMO/ct111', expectFail: true },
);

title(
  'A mesh server on ct111 with its CRL receiver, built with lib/ (meshServerOptions, watchMeshTls, peerIdentity, crlReceiver)',
);
const ct111 = await meshServer(nodeDir);
console.log(`ct111.mesh mesh server on 127.0.0.1:${ct111.port}`);

title("opus@ct111 calls ct111's mesh server over mTLS with agents/opus.crt");
console.log(chalk.cyan(`GET https://ct111.mesh:${ct111.port}/whoami  (as opus@ct111)`));
const before = await whoami(ct111.port, 'opus');
console.log(before);
if (!before.startsWith('HTTP 200') || !before.includes('"cn":"opus@ct111"')) await fail('the agent was not accepted');

const connectTo = `ct111.mesh:3000:127.0.0.1:${ct111.port}`;
const revokeStep = step + 1;
await show(
  'Revoke opus everywhere: the CRL is rebuilt, installed on the CA host and pushed to every node',
  'make',
  ['--no-print-directory', '-C', repo, 'revoke', 'CN=opus@ct111', 'REASON=keyCompromise'],
  {
    env: { RIVET_NODE_DIR: hostDir, RIVET_CRL_PUSH_CONNECT_TO: connectTo },
    envNote: `RIVET_NODE_DIR=$DEMO/ct110 RIVET_CRL_PUSH_CONNECT_TO=${connectTo}`,
  },
);
await show(
  'ct111 pulls the CRL too (the fallback timer): already current thanks to the push',
  provision,
  ['fetch-crl'],
  { env: { RIVET_NODE_DIR: nodeDir }, envNote: 'RIVET_NODE_DIR=$DEMO/ct111' },
);

title('The node itself is still accepted');
const node = await whoami(ct111.port);
console.log(node);
if (!node.startsWith('HTTP 200')) await fail('the node cert should still be accepted');

title('The same request as opus@ct111 is now refused');
console.log(chalk.cyan(`GET https://ct111.mesh:${ct111.port}/whoami  (as opus@ct111)`));
const after = await whoami(ct111.port, 'opus');
console.log(after);
const opusSerial = parseCertPem(await fs.readFile(path.join(nodeDir, 'agents', 'opus.crt'), 'utf8')).serial;
const installed = parseCrlBundle(await fs.readFile(path.join(nodeDir, 'crl.pem'), 'utf8'))[0]!;
console.log(
  `why: the certificate check at the handshake fails (the server answers 403 and serves nothing) — opus's serial ${opusSerial} is on the CRL ct111's server now holds (crlNumber ${installed.crlNumber}, pushed in step ${revokeStep}, loaded without a restart)`,
);
if (after.startsWith('HTTP 200') || !isRevoked([installed], opusSerial)) await fail('the revoked agent was accepted');

title('Stop the service and the mesh servers');
const pid = serve.pid;
await cleanup();
console.log(
  `stopped rivet-ca serve (pid ${pid}, exit ${serve.exitCode ?? serve.signalCode}) and the mesh server; removed ${home}`,
);
console.log(
  chalk.green(
    '\ndemo complete: ct111 enrolled with a pinned root, opus was accepted over mTLS, revoked, and then refused.',
  ),
);
