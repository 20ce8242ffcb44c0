// Timers never install software, and every unit we render is one systemd accepts (issue 15):
// `rivet-ca install-units` (the CA host) and `provision-ct enroll --install-timer systemd` (a
// node) both pass `systemd-analyze verify`; `make renew` and `make fetch-crl` run in a checkout
// whose package-lock.json is newer than node_modules, with no registry reachable, and leave
// node_modules exactly as it was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { ROOT, cli, tempDir } from './helpers/ca.ts';
import { startServed, mustOk, SECRET, type Served } from './helpers/provision.ts';

let s: Served;
test.before(async () => {
  s = await startServed();
});
test.after(async () => {
  await s.close();
});

async function verify(files: string[]): Promise<{ code: number; out: string }> {
  const r = await execa('systemd-analyze', ['verify', '--man=no', ...files], { reject: false });
  return { code: r.exitCode ?? -1, out: `${r.stdout}${r.stderr}` };
}

test('install-units writes the serve and renew units, systemd-analyze verify accepts them, and a rerun changes nothing', async () => {
  const root = await tempDir('rivet-units-');
  const r = await cli(
    s.ca,
    ['install-units', '--root', root, '--listen', '127.0.0.1:8443', '--secret-file', '/etc/rivet-ca/bootstrap.secret'],
    { env: { RIVET_NODE_DIR: s.hostDir } },
  );
  assert.is(r.exitCode, 0, r.stderr);
  const dir = path.join(root, 'etc/systemd/system');
  const files = ['rivet-serve.service', 'rivet-renew.service', 'rivet-renew.timer'].map((f) => path.join(dir, f));
  for (const f of files) assert.ok(fs.existsSync(f), f);
  const serve = fs.readFileSync(files[0]!, 'utf8');
  assert.match(serve, new RegExp(`Environment=RIVET_CA_DIR=${s.ca.store.dir}\n`));
  assert.match(serve, /Environment=RIVET_BOOTSTRAP_SECRET_FILE=\/etc\/rivet-ca\/bootstrap\.secret\n/);
  assert.match(serve, /ExecStart=\/\S+\/scripts\/rivet-ca\.mts serve --listen 127\.0\.0\.1:8443\n/);
  assert.not.match(serve, /RIVET_BOOTSTRAP_SECRET=/, 'the secret itself never goes into a unit every user can read');
  const v = await verify(files);
  assert.is(v.code, 0, v.out);
  const again = await cli(
    s.ca,
    ['install-units', '--root', root, '--listen', '127.0.0.1:8443', '--secret-file', '/etc/rivet-ca/bootstrap.secret'],
    { env: { RIVET_NODE_DIR: s.hostDir } },
  );
  assert.match(again.stdout, /^unchanged: /);
});

test('install-units refuses a listen address or a path that cannot go into a unit', async () => {
  const root = await tempDir('rivet-units-');
  const bad = await cli(s.ca, ['install-units', '--root', root, '--secret-file', '/etc/rivet ca/secret%i']);
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /--secret-file "\/etc\/rivet ca\/secret%i" must be an absolute path of letters, digits and/);
  const listen = await cli(s.ca, ['install-units', '--root', root, '--listen', '0.0.0.0:99999']);
  assert.is(listen.exitCode, 2);
  assert.equal(fs.readdirSync(root), [], 'nothing written');
});

test('a deliberately broken unit is refused by the same check (the check can fail)', async () => {
  const dir = await tempDir('rivet-units-');
  fs.writeFileSync(
    path.join(dir, 'broken.service'),
    '[Service]\nType=oneshot\nExecStart=/nonexistent/rivet-ca renew\n',
  );
  assert.is.not((await verify([path.join(dir, 'broken.service')])).code, 0);
});

/** A checkout of this repo whose package-lock.json is newer than node_modules (as after a git pull). */
function staleCheckout(home: string): { dir: string; listing: () => string } {
  const dir = path.join(home, 'checkout');
  fs.mkdirSync(dir);
  for (const f of ['scripts', 'lib', 'templates', 'node_modules', 'dist'])
    if (fs.existsSync(path.join(ROOT, f))) fs.symlinkSync(path.join(ROOT, f), path.join(dir, f));
  for (const f of ['Makefile', 'package.json', 'package-lock.json', 'tsconfig.json'])
    fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  const future = new Date(Date.now() + 3600_000);
  fs.utimesSync(path.join(dir, 'package-lock.json'), future, future);
  fs.utimesSync(path.join(dir, 'package.json'), future, future);
  const nm = path.join(ROOT, 'node_modules');
  const listing = () =>
    fs
      .readdirSync(nm)
      .sort()
      .map((n) => `${n} ${fs.lstatSync(path.join(nm, n)).mtimeMs}`)
      .join('\n') + `\n.package-lock ${fs.statSync(path.join(nm, '.package-lock.json')).mtimeMs}`;
  return { dir, listing };
}

test('make renew and make fetch-crl with package-lock.json touched and no registry: both succeed, node_modules untouched', async () => {
  const nodeDir = path.join(s.home, 'ct150');
  mustOk(
    await s.provision(nodeDir, ['enroll', '--node-id', 'ct150', ...s.datahubArgs, '--ca-fingerprint', s.fingerprint], {
      RIVET_BOOTSTRAP_SECRET: SECRET,
    }),
    'enroll ct150',
  );
  const { dir, listing } = staleCheckout(await tempDir('rivet-norepo-'));
  const before = listing();
  // An address nothing listens on: any npm that runs fails at once instead of installing.
  const env = {
    PATH: process.env.PATH!,
    HOME: s.home,
    RIVET_CA_DIR: s.ca.store.dir,
    RIVET_NODE_DIR: nodeDir,
    RIVET_ENV_FILE: '/dev/null',
    npm_config_registry: 'http://127.0.0.1:9/',
    npm_config_offline: 'true',
  };
  for (const target of ['renew', 'fetch-crl']) {
    const r = await execa('make', ['--no-print-directory', '-C', dir, target], {
      reject: false,
      env,
      extendEnv: false,
    });
    assert.is(r.exitCode, 0, `make ${target}:\n${r.stdout}\n${r.stderr}`);
    assert.not.match(`${r.stdout}${r.stderr}`, /npm (ci|install)/, `make ${target} ran npm`);
  }
  assert.is(listing(), before, 'node_modules is exactly as it was');
});

test('make renew with neither a CA nor an enrolled node says so and exits 2', async () => {
  const empty = await tempDir('rivet-none-');
  const r = await execa('make', ['--no-print-directory', '-C', ROOT, 'renew'], {
    reject: false,
    env: { PATH: process.env.PATH!, RIVET_CA_DIR: path.join(empty, 'ca'), RIVET_NODE_DIR: path.join(empty, 'node') },
    extendEnv: false,
  });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /found neither a CA in .* \(RIVET_CA_DIR\) nor an enrolled node in .* \(RIVET_NODE_DIR\)/);
});

test('the node timer units provision-ct renders pass systemd-analyze verify too', async () => {
  const nodeDir = path.join(s.home, 'ct151');
  const root = await tempDir('rivet-timer-');
  mustOk(
    await s.provision(
      nodeDir,
      [
        'enroll',
        '--node-id',
        'ct151',
        ...s.datahubArgs,
        '--ca-fingerprint',
        s.fingerprint,
        '--install-timer',
        'systemd',
        '--timer-root',
        root,
      ],
      { RIVET_BOOTSTRAP_SECRET: SECRET },
    ),
    'enroll ct151',
  );
  const dir = path.join(root, 'etc/systemd/system');
  const files = fs.readdirSync(dir).map((f) => path.join(dir, f));
  assert.is(files.length, 4);
  const v = await verify(files);
  assert.is(v.code, 0, v.out);
});

test.run();
