// Directory ownership (DESIGN §8): the CA dir and the node dir, and everything in them, belong to
// the running user or root and are writable by nobody else. The attack: another local user
// pre-created the directory, so it stayed theirs; they swapped enroll-tokens.json for a token of
// their own (then /enroll with it: 200) and rivet-ca.crt for another CA, and doctor showed green.
// Here the other user is uid 65534 acting for real (child processes with that uid), and every
// command refuses with the fix (exit 2) or reports it (doctor, provision-ct status: exit 1).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { execa } from 'execa';
import { cli, freshCa, snapshot, tempDir } from './helpers/ca.ts';
import { startServed, mustOk, PROVISION } from './helpers/provision.ts';
import { openCa } from '../lib/ca/handle.ts';
import { meshDomain, nodeId } from '../lib/core/identity.ts';
import { initRoot, issueIntermediate } from '../lib/ops/hierarchy.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { startEnrollService } from '../lib/service/server.ts';
import { DEFAULT_SAN_CIDRS, parseCidrs } from '../lib/core/san.ts';
import { loadMeshTls } from '../lib/mesh/tls.ts';
import { UsageError } from '../lib/core/errors.ts';
import { ownershipProblems } from '../lib/sys/ownership.ts';

const OTHER = 65534; // nobody: the other local user

/** Runs a shell command as the other user, the way they would attack. */
async function asOther(script: string, args: string[] = [], input = ''): Promise<void> {
  const r = await execa('sh', ['-c', script, 'sh', ...args], { uid: OTHER, gid: OTHER, input, reject: false });
  if (r.exitCode !== 0) throw new Error(`as uid ${OTHER}: ${script}: ${r.stderr}`);
}

/** A world-writable sticky directory (like /tmp or a shared /shared) where anyone may create a directory. */
async function sharedBase(): Promise<string> {
  const base = path.join(await tempDir('rivet-own-'), 'shared');
  fs.mkdirSync(base);
  fs.chmodSync(base, 0o1777);
  fs.chmodSync(path.dirname(base), 0o755);
  return base;
}

const fixLine = (stderr: string) => /fix: (.+)$/m.exec(stderr)?.[1];

test('a CA dir pre-created by another user, enroll-tokens.json swapped by them: serve, token, list, issue refuse (exit 2) naming the fix; doctor is red; nothing changes', async () => {
  const base = await sharedBase();
  const dir = path.join(base, 'rivet-ca');
  await asOther('mkdir -m 0755 "$1"', [dir]);
  // The operator did not notice and set the CA up inside it (the library does not check here).
  const ca = openCa(dir, meshDomain('mesh'));
  await initRoot(ca);
  await issueIntermediate(ca);
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  // The other user's token for a node of their choosing, put in place by a rename in their directory.
  const token = `rvt_${crypto.randomBytes(32).toString('base64url')}`;
  const store = [
    {
      hash: crypto.createHash('sha256').update(token).digest('hex'),
      node: 'ct666',
      created: new Date().toISOString(),
      expires: new Date(Date.now() + 3_600_000).toISOString(),
    },
  ];
  await asOther('cat > "$1/.swap" && mv -f "$1/.swap" "$1/enroll-tokens.json"', [dir], JSON.stringify(store));
  assert.is(fs.statSync(path.join(dir, 'enroll-tokens.json')).uid, OTHER, 'the swap worked at the OS level');
  const before = snapshot(dir);

  const serve = await cli(
    dir,
    [
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--tls-cert',
      ca.store.issued('ct110', 'crt'),
      '--tls-key',
      ca.store.issued('ct110', 'key'),
    ],
    { env: { RIVET_BOOTSTRAP_SECRET: 'x' } },
  );
  assert.is(serve.exitCode, 2, serve.stderr);
  assert.is(serve.stderr.trim().split('\n').length, 1, `one line: ${serve.stderr}`);
  assert.match(
    serve.stderr,
    new RegExp(`^rivet-ca: CA directory ${dir}: ${dir} is owned by uid ${OTHER}, not by root or by uid 0 running this`),
  );
  assert.is(fixLine(serve.stderr), `chown -R root: ${dir} && chmod -R go-w ${dir}`);
  for (const args of [['token', 'ct667'], ['list'], ['issue-node', 'ct111'], ['init']]) {
    const r = await cli(dir, args);
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /is owned by uid 65534/);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const doctor = await cli(dir, ['doctor']);
  assert.is(doctor.exitCode, 1, doctor.stdout);
  assert.match(
    doctor.stdout,
    new RegExp(`FAIL  ${dir} is owned by uid ${OTHER}.* — chown -R root: ${dir} && chmod -R go-w ${dir}`),
  );
  assert.match(doctor.stdout, /FAIL {2}.*enroll-tokens\.json is owned by uid 65534/);
  // The library's service refuses too: the token of the other user never meets /enroll.
  const started = await startEnrollService({
    ca,
    sanCidrs: parseCidrs(DEFAULT_SAN_CIDRS),
    secret: 'x',
    host: '127.0.0.1',
    port: 0,
    tlsCert: ca.store.issued('ct110', 'crt'),
    tlsKey: ca.store.issued('ct110', 'key'),
  }).then(
    async (s) => {
      await s.close();
      return 'started';
    },
    (err: Error) => err,
  );
  assert.instance(started, UsageError);
  assert.is((started as UsageError).code, 'unsafe_ownership');
  assert.equal(snapshot(dir), before, 'the CA dir is byte-identical: nothing was read into effect, nothing written');

  // The printed fix works (what the other user changed meanwhile is for the operator to review).
  mustOk(
    await execa('sh', ['-c', fixLine(serve.stderr)!], { reject: false }).then((r) => ({
      exitCode: r.exitCode ?? -1,
      stdout: String(r.stdout),
      stderr: String(r.stderr),
    })),
    'the fix',
  );
  assert.equal(ownershipProblems(dir), []);
  assert.is((await cli(dir, ['list'])).exitCode, 0);
});

test('a group-writable file, a world-writable directory above, a link owned by another user: each refused, naming the path', async () => {
  const ca = await freshCa();
  const index = path.join(ca.store.intermediateDir, 'index.txt');
  fs.chmodSync(index, 0o660);
  const a = await cli(ca, ['list']);
  assert.is(a.exitCode, 2);
  assert.match(a.stderr, new RegExp(`${index} is writable by its group \\(mode 0660\\)`));
  fs.chmodSync(index, 0o600);
  assert.is((await cli(ca, ['list'])).exitCode, 0);

  const parent = path.dirname(ca.store.dir);
  fs.chmodSync(parent, 0o777); // anyone may rename the CA dir away and put their own in its place
  const b = await cli(ca, ['list']);
  assert.is(b.exitCode, 2);
  assert.match(
    b.stderr,
    new RegExp(
      `${parent} is writable by its group and others \\(mode 0777\\).*fix: chown root: ${parent} && chmod go-w ${parent}$`,
      'm',
    ),
  );
  fs.chmodSync(parent, 0o1777); // sticky, like /tmp: only an entry's owner may rename it
  assert.is((await cli(ca, ['list'])).exitCode, 0, 'a sticky world-writable directory above is fine');
  fs.chmodSync(parent, 0o700);

  const base = await sharedBase();
  const link = path.join(base, 'ca-link');
  await asOther('ln -s "$1" "$2"', [ca.store.dir, link]); // their link: they can point it anywhere, any time
  const c = await cli(link, ['list']);
  assert.is(c.exitCode, 2);
  assert.match(c.stderr, new RegExp(`${link} is owned by uid ${OTHER}`));
  const d = await cli(path.join(base, 'not-yet'), ['list']);
  assert.not.match(
    d.stderr,
    /owned by|writable by/,
    'a CA dir that does not exist yet under a safe parent is not an ownership problem',
  );
});

test("a node dir that is another user's, rivet-ca.crt swapped by them for another CA: renew and fetch-crl refuse, loadMeshTls refuses, status is red; nothing changes", async () => {
  const served = await startServed();
  try {
    const nodeDir = path.join(served.home, 'ct150');
    mustOk(
      await served.provision(
        nodeDir,
        ['enroll', '--node-id', 'ct150', ...served.datahubArgs, '--ca-fingerprint', served.fingerprint],
        { RIVET_BOOTSTRAP_SECRET: 'bootstrap secret: do not log me 7f3a' },
      ),
      'enroll',
    );
    fs.chmodSync(served.home, 0o755);
    fs.chownSync(nodeDir, OTHER, OTHER); // as if they had pre-created it
    const other = await freshCa();
    await asOther(
      'cat > "$1/.swap" && mv -f "$1/.swap" "$1/rivet-ca.crt"',
      [nodeDir],
      fs.readFileSync(other.store.chainFile, 'utf8'),
    );
    const before = snapshot(nodeDir);
    for (const cmd of [['renew'], ['fetch-crl']]) {
      const r = await served.provision(nodeDir, cmd);
      assert.is(r.exitCode, 2, `${cmd[0]}: ${r.stdout}${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(
          `^provision-ct: node directory ${nodeDir}: ${nodeDir} is owned by uid ${OTHER}.*fix: chown -R root: ${nodeDir} && chmod -R go-w ${nodeDir}$`,
        ),
      );
    }
    const status = await served.provision(nodeDir, ['status']);
    assert.is(status.exitCode, 1, status.stdout);
    assert.match(status.stdout, /rivet-ca\.crt is owned by uid 65534, .* — another user could swap this node's files/);
    assert.throws(
      () => loadMeshTls({ dir: nodeDir }),
      (err: Error) => err instanceof UsageError && err.code === 'unsafe_ownership',
    );
    assert.equal(snapshot(nodeDir), before, 'the node dir is byte-identical');
    const json = await execa(PROVISION, ['status', '--json'], {
      reject: false,
      env: { RIVET_NODE_DIR: nodeDir, RIVET_ENV_FILE: '/dev/null' },
    });
    assert.ok(
      (JSON.parse(String(json.stdout)) as { problems: string[] }).problems.some((p) =>
        p.includes('owned by uid 65534'),
      ),
    );
  } finally {
    await served.close();
  }
});

test.run();
