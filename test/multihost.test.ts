// Four hosts in network namespaces (issue 15): ct110 runs the README's operator quick start as
// written (its `$ ` lines, in order, only the directories moved into a temp dir: /shared/rivet-ca,
// /etc/rivetos and /etc/rivet-ca), ct111–ct113 each run the README's "A new node" enrollment and the
// example mesh server, and every host resolves the others by name through its own /etc/hosts.
// Then: a revoke reaches 4/4 nodes, the CA host included; a node whose link was down during a
// revoke refuses the revoked agent soon after its link returns (the push queue, not its pull); and
// after rotate-intermediate an agent under the new intermediate is accepted everywhere.
// Skipped, saying why, where network namespaces are not available (not root, no iproute2).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import type { ResultPromise } from 'execa';
import { ROOT, tempDir } from './helpers/ca.ts';
import { makeMesh, netnsUnavailable, type Mesh } from './helpers/netns.ts';

const HOSTS = ['ct110', 'ct111', 'ct112', 'ct113'];
const NODES = HOSTS.slice(1);
const unavailable = await netnsUnavailable();

/** The `$ ` command lines of the console block under a README heading. */
function readmeCommands(heading: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const at = text.indexOf(`\n## ${heading}\n`);
  assert.ok(at >= 0, `README has a "## ${heading}" section`);
  const block = /```console\n([\s\S]*?)```/.exec(text.slice(at))![1]!;
  // A command may continue on the next line after a trailing backslash.
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter((l) => l.startsWith('$ '))
    .map((l) => l.slice(2).replace(/\s+#.*$/, ''));
}

if (unavailable) {
  console.log(`multihost: skipped — ${unavailable} (network namespaces are needed to run four hosts)`);
} else {
  let mesh: Mesh;
  let work: string;
  const bg: Array<ResultPromise> = [];
  const dirs = (h: string) => ({
    home: path.join(work, h),
    node: path.join(work, h, 'rivetos'),
    ca: path.join(work, h, 'rivet-ca'),
    etc: path.join(work, h, 'etc-rivet-ca'),
  });
  /** Moves the README's system paths into this host's temp dir. */
  const local = (h: string, cmd: string) =>
    cmd
      .replaceAll('/shared/rivet-ca', dirs(h).ca)
      .replaceAll('/etc/rivetos', dirs(h).node)
      .replaceAll('/etc/rivet-ca', dirs(h).etc);
  const sh = (h: string, script: string, env: Record<string, string> = {}) =>
    mesh.exec(h, 'bash', ['-euo', 'pipefail', '-c', script], {
      cwd: ROOT,
      reject: false,
      env: { PATH: process.env.PATH!, HOME: dirs(h).home, RIVET_ENV_FILE: '/dev/null', ...env },
      extendEnv: false,
    });
  const probe = async (from: string, nodeDir: string, agent: string, url: string) =>
    String(
      (
        await mesh.exec(
          from,
          process.execPath,
          ['--import', 'tsx', 'test/helpers/mesh-probe.mts', nodeDir, agent, url],
          { cwd: ROOT, reject: false },
        )
      ).stdout,
    ).trim();
  const accepted = (r: string) => r.startsWith('HTTP 200');
  /** Polls until every node's mesh server answers `agent` as `want` (accepted or not); ms taken. */
  async function until(
    agentDir: string,
    agent: string,
    want: boolean,
    nodes: string[],
    limitMs: number,
  ): Promise<number> {
    const start = Date.now();
    for (;;) {
      const rs = await Promise.all(nodes.map((n) => probe('ct110', agentDir, agent, `https://${n}.mesh:3000/whoami`)));
      if (rs.every((r) => accepted(r) === want)) return Date.now() - start;
      if (Date.now() - start > limitMs)
        throw new Error(`after ${limitMs} ms: ${rs.map((r, i) => `${nodes[i]} ${r}`).join('; ')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  /** Starts a long-running command in a host; resolves once its output matches `ready`. */
  function start(h: string, script: string, ready: RegExp, env: Record<string, string> = {}): Promise<void> {
    const child = mesh.exec(h, 'bash', ['-c', `exec ${script}`], {
      cwd: ROOT,
      reject: false,
      env: { PATH: process.env.PATH!, HOME: dirs(h).home, RIVET_ENV_FILE: '/dev/null', ...env },
      extendEnv: false,
    });
    bg.push(child);
    let out = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${h}: ${script} did not become ready: ${out}`)), 60_000);
      const on = (d: Buffer) => {
        out += d;
        if (ready.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', on);
      child.stderr!.on('data', on);
      void child.then(() => {
        clearTimeout(timer);
        reject(new Error(`${h}: ${script} exited: ${out}`));
      });
    });
  }

  test.before(async () => {
    work = await tempDir('rivet-multihost-');
    mesh = await makeMesh(
      HOSTS,
      Object.fromEntries(HOSTS.map((h) => [h, [`${h}.mesh`, `${h}-mcp.mesh`, `${h}-runtime-rpc.mesh`]])),
    );
    for (const h of HOSTS) fs.mkdirSync(dirs(h).home, { recursive: true, mode: 0o700 });
  });
  test.after(async () => {
    for (const c of bg) c.kill('SIGTERM');
    await Promise.allSettled(bg);
    await mesh?.close();
  });

  test('the README quick start verbatim on ct110, then "A new node" on three nodes: serve starts, a revoke pushes 4/4', async () => {
    const quick = readmeCommands('Operator quick start (on the CA host)');
    const serveAt = quick.findIndex((c) => /\bmake serve\b|rivet-ca\.mts serve\b/.test(c));
    assert.ok(serveAt > 0, `the quick start starts serve: ${quick.join(' | ')}`);
    const setup = await sh(
      'ct110',
      quick
        .slice(0, serveAt)
        .map((c) => local('ct110', c))
        .join('\n'),
    );
    assert.is(setup.exitCode, 0, `${setup.stdout}\n${setup.stderr}`);
    const fingerprint = /sha256:[0-9a-f]{64}/.exec(String(setup.stdout))![0];
    const env = /^export (.*)$/m.exec(quick.slice(0, serveAt).join('\n'))?.[1] ?? '';
    await start(
      'ct110',
      local('ct110', `env ${env} ${quick[serveAt]!.replace(/\s*&$/, '')}`),
      /listening on https:\/\//,
    );

    // The secret reaches each node once, out of band (here: copied from the CA host's file).
    const secret = fs.readFileSync(path.join(dirs('ct110').etc, 'bootstrap.secret'), 'utf8');
    const nodeCmds = readmeCommands('A new node');
    for (const n of NODES) {
      fs.mkdirSync(dirs(n).etc, { recursive: true, mode: 0o700 });
      fs.writeFileSync(path.join(dirs(n).etc, 'bootstrap.secret'), secret, { mode: 0o600 });
      const script = nodeCmds
        .map((c) =>
          local(n, c)
            .replaceAll('ct115', n)
            .replace(/sha256:\S*…\S*/, fingerprint),
        )
        .join('\n');
      const r = await sh(n, script);
      assert.is(r.exitCode, 0, `${n}: ${script}\n${r.stdout}\n${r.stderr}`);
      fs.writeFileSync(
        path.join(dirs(n).node, 'allow-list.json'),
        JSON.stringify({
          [`opus@${n}`]: ['whoami'],
          [`grok@${n}`]: ['whoami'],
          'opus@ct111': ['whoami'],
          'grok@ct111': ['whoami'],
        }),
      );
      await start(
        n,
        `env RIVET_NODE_DIR=${dirs(n).node} PORT=3000 ${process.execPath} --import tsx examples/mesh-server.ts`,
        /mesh server up/,
      );
    }
    const ms = await until(dirs('ct111').node, 'opus', true, NODES, 10_000);
    console.log(`    opus@ct111 accepted by ${NODES.length} nodes (${ms} ms)`);

    const revoke = await sh(
      'ct110',
      local('ct110', `export RIVET_CA_DIR=/shared/rivet-ca RIVET_NODE_DIR=/etc/rivetos\nmake revoke CN=opus@ct111`),
    );
    assert.is(revoke.exitCode, 0, `${revoke.stdout}\n${revoke.stderr}`);
    assert.match(String(revoke.stdout), /push: 4\/4 nodes updated/);
    const cut = await until(dirs('ct111').node, 'opus', false, NODES, 5_000);
    console.log(`    revoked opus@ct111 refused by all ${NODES.length} nodes ${cut} ms after revoke returned`);
    assert.ok(
      accepted(await probe('ct110', dirs('ct111').node, 'grok', 'https://ct112.mesh:3000/whoami')),
      'grok@ct111 still accepted',
    );
  });

  test('a node whose link is down during a revoke refuses the revoked agent within 30 s of its link returning', async () => {
    await mesh.link('ct113', false);
    const revoke = await sh(
      'ct110',
      local('ct110', `export RIVET_CA_DIR=/shared/rivet-ca RIVET_NODE_DIR=/etc/rivetos\nmake revoke CN=grok@ct111`),
    );
    assert.is(revoke.exitCode, 0, `${revoke.stdout}\n${revoke.stderr}`);
    assert.match(String(revoke.stdout), /ct113/);
    await new Promise((r) => setTimeout(r, 3000)); // a few retries fail while it is away
    await mesh.link('ct113', true);
    const ms = await until(dirs('ct111').node, 'grok', false, ['ct113'], 30_000);
    console.log(`    ct113 refused grok@ct111 ${ms} ms after its link returned (its pull runs every 15 min)`);
  });

  test('after rotate-intermediate, an agent with a new-intermediate certificate is accepted by every node within 5 s', async () => {
    const caEnv = `export RIVET_CA_DIR=/shared/rivet-ca RIVET_NODE_DIR=/etc/rivetos`;
    const rot = await sh('ct110', local('ct110', `${caEnv}\n./scripts/rivet-ca.mts rotate-intermediate`));
    assert.is(rot.exitCode, 0, `${rot.stdout}\n${rot.stderr}`);
    const started = Date.now();
    const issue = await sh('ct110', local('ct110', `${caEnv}\n./scripts/rivet-ca.mts issue-agent sonnet@ct111`));
    assert.is(issue.exitCode, 0, `${issue.stdout}\n${issue.stderr}`);
    const agentDir = path.join(work, 'sonnet');
    fs.mkdirSync(path.join(agentDir, 'agents'), { recursive: true, mode: 0o700 });
    for (const f of ['rivet-ca.crt', 'crl.pem'])
      fs.copyFileSync(path.join(dirs('ct111').node, f), path.join(agentDir, f));
    fs.copyFileSync(path.join(dirs('ct110').ca, 'issued/sonnet@ct111.crt'), path.join(agentDir, 'agents/sonnet.crt'));
    fs.copyFileSync(path.join(dirs('ct110').ca, 'issued/sonnet@ct111.key'), path.join(agentDir, 'agents/sonnet.key'));
    for (const n of NODES) {
      const list = path.join(dirs(n).node, 'allow-list.json');
      fs.writeFileSync(
        list,
        JSON.stringify({ ...JSON.parse(fs.readFileSync(list, 'utf8')), 'sonnet@ct111': ['whoami'] }),
      );
    }
    const ms = await until(agentDir, 'sonnet', true, NODES, 5_000);
    console.log(
      `    sonnet@ct111 (intermediate 2) accepted by every node ${Date.now() - started} ms after rotation (${ms} ms of polling)`,
    );
  });

  test.run();
}
