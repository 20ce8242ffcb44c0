// The installable package as the mesh's developers meet it: `npm pack` on a copy of the checkout
// (prepack compiles dist-lib/), `npm install <tgz>` in a scratch project, then `rivet-ca` and
// `rivet-ca/mcp` imported by plain Node 20 and by the current LTS (test/setup/node-lts.sh), a
// TypeScript consumer type-checked with moduleResolution nodenext, and both CLIs run from the
// installed package. Needs the npm registry (dependencies, Node LTS); `make test-all` runs it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ROOT } from './helpers/ca.ts';

let work: string;
let consumer: string;
let tgz: string;
let node24: string;
const SDK = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).devDependencies[
  '@modelcontextprotocol/sdk'
];
const sh = (cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; timeout?: number } = {}) =>
  execa(cmd, args, {
    cwd: opts.cwd,
    env: { RIVET_ENV_FILE: '/dev/null', ...opts.env },
    timeout: opts.timeout ?? 240_000,
    reject: false,
    all: true,
  });

test.before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'rivet-package-'));
  const src = path.join(work, 'src');
  for (const f of [
    'lib',
    'scripts',
    'templates',
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'README.md',
  ])
    fs.cpSync(path.join(ROOT, f), path.join(src, f), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
  const packed = await sh('npm', ['pack', '--json', '--pack-destination', work], { cwd: src });
  assert.is(packed.exitCode, 0, packed.all);
  const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[')));
  tgz = path.join(work, info[0].filename);
  (globalThis as { files?: string[] }).files = info[0].files.map((f: { path: string }) => f.path);
  consumer = path.join(work, 'consumer');
  fs.mkdirSync(consumer);
  fs.writeFileSync(
    path.join(consumer, 'package.json'),
    JSON.stringify({ name: 'mesh-service', private: true, type: 'module' }),
  );
  const installed = await sh(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      tgz,
      `@modelcontextprotocol/sdk@${SDK}`,
      '@types/node@20',
    ],
    { cwd: consumer },
  );
  assert.is(installed.exitCode, 0, installed.all);
  const lts = await sh(path.join(ROOT, 'test', 'setup', 'node-lts.sh'), []);
  assert.is(lts.exitCode, 0, lts.all);
  node24 = lts.stdout.trim();
});
test.after(() => fs.rmSync(work, { recursive: true, force: true }));

test('the tarball holds compiled ESM, .d.ts, the CLIs and templates — no sources, tests or certificates', () => {
  const files = (globalThis as { files?: string[] }).files!;
  for (const f of [
    'dist-lib/lib/index.js',
    'dist-lib/lib/index.d.ts',
    'dist-lib/lib/mcp.js',
    'dist-lib/lib/mcp.d.ts',
    'dist-lib/scripts/rivet-ca.mjs',
    'scripts/launch.mjs',
    'scripts/rivet-ca.mts',
    'templates/node.cnf',
  ]) {
    assert.ok(files.includes(f), `ships ${f}`);
  }
  const unwanted = files.filter(
    (f) =>
      /^(test|bench|examples|docs|dist)\//.test(f) ||
      /\.(key|crt|pem|p12|tgz)$/.test(f) ||
      (/^lib\//.test(f) && f.endsWith('.ts')),
  );
  assert.equal(unwanted, []);
});

for (const [name, node] of [
  ['Node 20', () => process.execPath],
  ['the current LTS', () => node24],
] as const) {
  test(`import('rivet-ca') and import('rivet-ca/mcp') work in plain ${name}`, async () => {
    const probe = `const lib = await import('rivet-ca'); const mcp = await import('rivet-ca/mcp');
      console.log(process.versions.node, typeof lib.loadMeshTls, typeof lib.authorize, typeof mcp.mountMcp, typeof mcp.meshMcpTransport, typeof mcp.startMcpBridge);`;
    const r = await sh(node(), ['--input-type=module', '-e', probe], { cwd: consumer });
    assert.is(r.exitCode, 0, r.all);
    assert.match(r.stdout, /^\d+\.\d+\.\d+ function function function function function$/);
    if (name !== 'Node 20') assert.match(r.stdout, /^24\./);
  });

  test(`both CLIs run from the installed package under ${name} (npx)`, async () => {
    const env = { PATH: `${path.dirname(node())}:${process.env.PATH}` };
    for (const tool of ['rivet-ca', 'provision-ct']) {
      const r = await sh('npx', ['--no-install', tool, '--help'], { cwd: consumer, env });
      assert.is(r.exitCode, 0, r.all);
      assert.match(r.stdout, new RegExp(`^${tool} <command>`));
    }
    // A real CA operation: the compiled CLI finds templates/ and drives openssl.
    const caDir = path.join(work, `ca-${node().length}`);
    for (const args of [['init'], ['issue-intermediate'], ['issue-node', 'ct111']]) {
      const r = await sh('npx', ['--no-install', 'rivet-ca', ...args], {
        cwd: consumer,
        env: { ...env, RIVET_CA_DIR: caDir },
      });
      assert.is(r.exitCode, 0, r.all);
    }
    assert.ok(fs.existsSync(path.join(caDir, 'issued', 'ct111.crt')));
  });
}

test('a TypeScript consumer type-checks with moduleResolution nodenext (declarations included)', async () => {
  fs.writeFileSync(
    path.join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      files: ['service.ts'],
    }),
  );
  const good = `import https from 'node:https';
import { loadMeshTls, meshServerOptions, allowListFrom, RivetError, type PeerIdentity } from 'rivet-ca';
import { mountMcp, meshMcpTransport, meshIdentityOf, type McpMesh } from 'rivet-ca/mcp';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
const server = https.createServer(meshServerOptions(loadMeshTls({ dir: '/etc/rivetos' })));
const mesh: McpMesh = mountMcp(server, {
  allowList: allowListFrom({ 'opus@ct111': ['whoami'] }),
  createServer: (who: PeerIdentity) => {
    const s = new McpServer({ name: 'svc', version: '1.0.0' });
    s.registerTool('whoami', {}, async (extra) => ({ content: [{ type: 'text', text: meshIdentityOf(extra).cn + who.kind }] }));
    return s;
  },
});
const transport = meshMcpTransport('https://ct110-mcp.mesh:8443/mcp', { identity: { p12: 'phil.p12', passphraseFile: 'p12.pass' } });
const code: string = new RivetError('x', 'forbidden').code;
void mesh; void transport; void code;
`;
  const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc');
  fs.writeFileSync(path.join(consumer, 'service.ts'), good);
  const ok = await sh(tsc, ['-p', consumer]);
  assert.is(ok.exitCode, 0, ok.all);
  // The check has teeth: a wrong type or an unknown error code is caught through our .d.ts.
  fs.writeFileSync(
    path.join(consumer, 'service.ts'),
    `${good}const n: number = loadMeshTls().domain;\nnew RivetError('x', 'no_such_code');\n`,
  );
  const bad = await sh(tsc, ['-p', consumer]);
  assert.is(bad.exitCode, 2, bad.all);
  assert.match(bad.stdout, /Type 'MeshDomain' is not assignable to type 'number'/);
  assert.match(bad.stdout, /"no_such_code"/);
});

test.run();
