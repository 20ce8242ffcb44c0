// Issuance under the intermediate's name constraints (DESIGN §3): a name outside them is refused
// with the rule and the fix (exit 2 at the CLI, 403 name_constraint at the service) and changes
// nothing; the bare <node-id> alias is refused while constrained; --no-name-constraints and
// --permit are chosen at intermediate time, recorded beside it, kept by rotation, shown by status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { cli, freshCa, opensslOk, tempDir, type CliResult } from './helpers/ca.ts';
import { call, caState, newCsr, SECRET, type Fixture } from './helpers/enroll.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { nodeId } from '../lib/core/identity.ts';
import { DEFAULT_SAN_CIDRS, parseCidrs } from '../lib/core/san.ts';
import { startEnrollService } from '../lib/service/server.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { nameConstraintsOf } from '../lib/x509/name-constraints.ts';
import { openCa } from '../lib/ca/handle.ts';
import { meshDomain } from '../lib/core/identity.ts';

async function cliCa(flags: string[]): Promise<string> {
  const dir = path.join(await tempDir('rivet-nci-'), 'ca');
  for (const args of [['init'], ['issue-intermediate', ...flags]]) {
    const r = await cli(dir, args);
    assert.is(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  return dir;
}
const state = (dir: string) => caState(openCa(dir, meshDomain('mesh')));
const intInfo = (dir: string) => parseCertPem(fs.readFileSync(path.join(dir, 'intermediate', 'int.crt'), 'utf8'));
const permitted = (dir: string) => nameConstraintsOf(intInfo(dir))?.permitted.map((s) => s.text);

function refused(r: CliResult, re: RegExp): void {
  assert.is(r.exitCode, 2, r.stderr + r.stdout);
  assert.match(r.stderr, re);
  assert.is(r.stderr.trim().split('\n').length, 1, 'one line');
}

test('the intermediate carries critical name constraints and the SPIFFE URI SAN of its trust domain', async () => {
  const dir = await cliCa([]);
  const info = intInfo(dir);
  assert.equal(info.uris, ['spiffe://mesh']);
  assert.ok(nameConstraintsOf(info)?.critical);
  assert.equal(permitted(dir), [
    'DNS:mesh',
    'DNS:localhost',
    'IP:127.0.0.0/8',
    'IP:::1/128',
    'IP:10.0.0.0/8',
    'IP:172.16.0.0/12',
    'IP:192.168.0.0/16',
    'IP:100.64.0.0/10',
    'IP:fc00::/7',
    'URI:mesh',
  ]);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'intermediate', 'name-constraints.json'), 'utf8')), {
    constrained: true,
    uri: true,
    permit: [],
  });
  const status = await cli(dir, ['status']);
  assert.match(
    status.stdout,
    /intermediate 1: critical name constraints: DNS mesh, localhost; IP 127\.0\.0\.0\/8, .*fc00::\/7; URI mesh/,
  );
});

test('the CLI refuses a public name, a public IP and the bare alias with the rule and the fix, changing nothing', async () => {
  const dir = await cliCa([]);
  const before = state(dir);
  refused(
    await cli(dir, ['issue-node', 'ct1', '--san', 'DNS:www.example.com']),
    /ct1\.mesh: SAN "DNS:www\.example\.com" is outside the intermediate's name constraints \(DNS mesh, localhost\) — verifiers would refuse the certificate; to allow it, rotate the intermediate with `rivet-ca rotate-intermediate --permit DNS:www\.example\.com`/,
  );
  refused(
    await cli(dir, ['issue-node', 'ct1', '--san', 'IP:8.8.8.8']),
    /SAN "IP:8\.8\.8\.8" is outside the intermediate's name constraints \(IP 127\.0\.0\.0\/8, .*\) .*--permit IP:8\.8\.8\.8\/32/,
  );
  refused(
    await cli(dir, ['issue-node', 'ct1', '--san', 'DNS:ct1']),
    /SAN "DNS:ct1" is a bare alias, and the intermediate is name-constrained \(DNS mesh, localhost\): no constraint can cover a name without a dot — use a name under mesh instead; .*\(or --no-name-constraints\)/,
  );
  assert.equal(state(dir), before, 'CA dir byte-identical except audit.log');
  assert.not.ok(fs.existsSync(path.join(dir, 'issued', 'ct1.key')), 'no key left behind');
  const ok = await cli(dir, [
    'issue-node',
    'ct1',
    '--san',
    'DNS:localhost',
    '--san',
    'DNS:api.ct1.mesh',
    '--san',
    'IP:fd00::1',
  ]);
  assert.is(ok.exitCode, 0, ok.stderr);
});

test('the service refuses with 403 name_constraint what its SAN policy would let through', async () => {
  const ca = await freshCa();
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  // RIVET_SAN_CIDRS widened after the intermediate was made: the policy allows 8.8.8.8, the intermediate does not.
  const service = await startEnrollService({
    ca,
    sanCidrs: parseCidrs(`${DEFAULT_SAN_CIDRS},8.8.8.0/24`),
    secret: SECRET,
    host: '127.0.0.1',
    port: 0,
    tlsCert: ca.store.issued('ct110', 'crt'),
    tlsKey: ca.store.issued('ct110', 'key'),
  });
  const fx: Fixture = {
    ca,
    service,
    chain: fs.readFileSync(ca.store.chainFile, 'utf8'),
    work: await tempDir(),
    close: () => service.close(),
  };
  try {
    const before = caState(ca);
    const ip = await call(fx, 'POST', '/enroll', {
      bearer: SECRET,
      body: { csr: (await newCsr(fx.work, 'ct120.mesh')).csr, sans: ['IP:8.8.8.8'] },
    });
    assert.is(ip.status, 403, ip.text);
    assert.is(ip.json.error.code, 'name_constraint');
    assert.match(ip.json.error.message, /SAN "IP:8\.8\.8\.8" is outside the intermediate's name constraints/);
    const bare = await call(fx, 'POST', '/enroll', {
      bearer: SECRET,
      body: { csr: (await newCsr(fx.work, 'ct121.mesh')).csr, sans: ['DNS:ct121'] },
    });
    assert.is(bare.status, 403, bare.text);
    assert.is(bare.json.error.code, 'name_constraint');
    assert.match(bare.json.error.message, /"DNS:ct121" is a bare alias/);
    assert.equal(caState(ca), before, 'refusals change nothing');
    const good = await call(fx, 'POST', '/enroll', {
      bearer: SECRET,
      body: { csr: (await newCsr(fx.work, 'ct122.mesh')).csr, sans: ['DNS:localhost', 'IP:10.9.9.9'] },
    });
    assert.is(good.status, 200, good.text);
  } finally {
    await fx.close();
  }
});

test('--no-name-constraints: bare aliases and outside names issue, and status says the intermediate is unconstrained', async () => {
  const dir = await cliCa(['--no-name-constraints']);
  assert.is(nameConstraintsOf(intInfo(dir)), undefined);
  assert.equal(intInfo(dir).uris, ['spiffe://mesh']);
  for (const san of ['DNS:ct3', 'DNS:ct3.lan']) {
    const r = await cli(dir, ['issue-node', 'ct3', '--force', '--san', san]);
    assert.is(r.exitCode, 0, r.stderr);
  }
  assert.match(
    (await cli(dir, ['status'])).stdout,
    /intermediate 1: no name constraints \(issued with --no-name-constraints\)/,
  );
});

test('--permit at intermediate time widens the constraints; rotation keeps the recorded choice unless told otherwise', async () => {
  const dir = await cliCa(['--permit', 'DNS:example.org', '--permit', 'IP:192.0.2.0/24']);
  assert.ok(permitted(dir)!.includes('DNS:example.org') && permitted(dir)!.includes('IP:192.0.2.0/24'));
  const r = await cli(dir, ['issue-node', 'ct4', '--san', 'DNS:api.example.org', '--san', 'IP:192.0.2.7']);
  assert.is(r.exitCode, 0, r.stderr);
  const v = await opensslOk([
    'verify',
    '-x509_strict',
    '-CAfile',
    path.join(dir, 'root', 'ca.crt'),
    '-untrusted',
    path.join(dir, 'intermediate', 'int.crt'),
    path.join(dir, 'issued', 'ct4.crt'),
  ]);
  assert.ok(v.ok, v.out);
  assert.match(
    (await cli(dir, ['status'])).stdout,
    /DNS mesh, localhost, example\.org; IP .*192\.0\.2\.0\/24; URI mesh/,
  );

  assert.is((await cli(dir, ['rotate-intermediate'])).exitCode, 0);
  assert.ok(permitted(dir)!.includes('DNS:example.org'), 'generation 2 inherits --permit');
  assert.is((await cli(dir, ['rotate-intermediate', '--no-uri-constraint'])).exitCode, 0);
  assert.not.ok(
    permitted(dir)!.some((p) => p.startsWith('URI:')),
    'generation 3 without the URI constraint',
  );
  assert.ok(permitted(dir)!.includes('DNS:example.org'));
  assert.is((await cli(dir, ['rotate-intermediate', '--no-name-constraints'])).exitCode, 0);
  assert.is(nameConstraintsOf(intInfo(dir)), undefined);
  assert.is((await cli(dir, ['rotate-intermediate'])).exitCode, 0);
  assert.is(nameConstraintsOf(intInfo(dir)), undefined, 'generation 5 stays unconstrained');
  assert.equal(
    JSON.parse(fs.readFileSync(path.join(dir, 'intermediate', 'name-constraints.json'), 'utf8')).constrained,
    false,
  );
  assert.is((await cli(dir, ['rotate-intermediate', '--name-constraints'])).exitCode, 0);
  assert.ok(nameConstraintsOf(intInfo(dir))?.critical, 'and --name-constraints turns them back on');
});

test('bad --permit values and contradictory flags are refused before anything is made', async () => {
  const dir = path.join(await tempDir('rivet-nci-'), 'ca');
  assert.is((await cli(dir, ['init'])).exitCode, 0);
  const before = state(dir);
  refused(await cli(dir, ['issue-intermediate', '--permit', 'DNS:*.example.org']), /invalid label "\*"/);
  refused(
    await cli(dir, ['issue-intermediate', '--permit', 'IP:8.8.8.8']),
    /--permit "IP:8\.8\.8\.8": want IP:<address>\/<prefix bits>/,
  );
  refused(
    await cli(dir, ['issue-intermediate', '--permit', 'email:a@b']),
    /must be DNS:<domain>, IP:<address>\/<bits> or URI:<host>/,
  );
  refused(
    await cli(dir, ['issue-intermediate', '--no-name-constraints', '--permit', 'DNS:x.org']),
    /cannot go with --no-name-constraints/,
  );
  refused(
    await cli(dir, ['issue-intermediate', '--no-uri-constraint', '--permit', 'URI:other']),
    /needs the URI constraint/,
  );
  assert.equal(state(dir), before);
});

test.run();
