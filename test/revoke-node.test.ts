// Agents fall with their node (issue 14: after `revoke ct111` with keyCompromise, opus@ct111 kept
// renewing at /renew). Revoking a node revokes its agents, printed per agent, in one database
// write and one CRL; `openssl verify -crl_check_all` then refuses each agent and their /renew gets
// 4xx. --node-only keeps the agents, but an agent whose node has no live certificate still gets
// nothing at /renew. The batch revocation writes exactly what `openssl ca -revoke` writes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import {
  enrollFixture,
  enrollNode,
  newCsr,
  call,
  caState,
  backdated,
  type Fixture,
  type EnrolledNode,
} from './helpers/enroll.ts';
import { cli, opensslOk, tempDir } from './helpers/ca.ts';
import { agentId, nodeId } from '../lib/core/identity.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';
import { readDb } from '../lib/ca/database.ts';
import { revokeSerials, withTempDir } from '../lib/sign/signer.ts';
import { renderFile } from '../lib/sys/template.ts';

let fx: Fixture;
test.before(async () => {
  fx = await enrollFixture({ reloadCheckMs: 100 });
});
test.after(async () => {
  await fx.close();
});

type Agent = { cn: string; cert: string; key: Buffer; keyFile: string };

async function nodeWithAgents(node: string, agents: string[]): Promise<{ node: EnrolledNode; agents: Agent[] }> {
  const n = await enrollNode(fx, `${node}.mesh`);
  const out: Agent[] = [];
  for (const a of agents) {
    const { key, csr } = await newCsr(fx.work, `${a}@${node}`);
    const r = await call(fx, 'POST', '/agents', { body: { csr }, cert: n.cert, key: n.key });
    assert.is(r.status, 200, r.text);
    out.push({ cn: `${a}@${node}`, cert: r.json.cert, key: fs.readFileSync(key), keyFile: key });
  }
  return { node: n, agents: out };
}

const serialOf = (pem: string) => parseCertPem(pem).serial;

test('revoking a node with 4 agents: all 5 serials on the CRL, each agent printed, refused by openssl verify and at /renew', async () => {
  const { node, agents } = await nodeWithAgents('ct111', ['opus', 'grok', 'sonnet', 'haiku']);
  const t0 = Date.now();
  const r = await cli(fx.ca, ['revoke', 'ct111', '--reason', 'keyCompromise', '--no-push']);
  const ms = Date.now() - t0;
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`revoked ct111\\.mesh serial ${serialOf(node.cert)}`));
  for (const a of agents)
    assert.match(
      r.stdout,
      new RegExp(`revoked ${a.cn} serial ${serialOf(a.cert)} \\(intermediate 1\\) — agent of ct111\\.mesh`),
    );
  process.stderr.write(`  [revoke] node + 4 agents in ${ms} ms (CLI, one database write, one CRL)\n`);

  const crl = parseCrlBundle(fs.readFileSync(fx.ca.store.crlBundle, 'utf8'));
  const listed = new Set(crl.flatMap((c) => c.revoked.map((e) => e.serial)));
  for (const pem of [node.cert, ...agents.map((a) => a.cert)])
    assert.ok(listed.has(serialOf(pem)), `serial ${serialOf(pem)} is on the CRL`);
  assert.is(listed.size, 5);

  const chain = path.join(fx.work, 'chain.pem');
  fs.writeFileSync(chain, fx.chain);
  for (const a of agents) {
    const leaf = path.join(fx.work, `${a.cn}.pem`);
    fs.writeFileSync(leaf, a.cert);
    const v = await opensslOk(['verify', '-crl_check_all', '-CAfile', chain, '-CRLfile', fx.ca.store.crlBundle, leaf]);
    assert.not.ok(v.ok, `${a.cn} must not verify`);
    assert.match(v.out, /certificate revoked/);
  }
  await new Promise((resolve) => setTimeout(resolve, 400)); // the service reloads its CRLs
  const before = caState(fx.ca);
  for (const a of agents) {
    const res = await call(fx, 'POST', '/renew', {
      body: { csr: (await newCsr(fx.work, a.cn, a.keyFile)).csr },
      cert: a.cert,
      key: a.key,
    });
    assert.ok(res.status === 401, `${a.cn} /renew: ${res.status} ${res.text}`);
    assert.match(res.json.error.code, /^(client_cert_rejected|cert_not_live)$/, 'refused as revoked');
  }
  assert.equal(caState(fx.ca), before, 'nothing signed');
});

test('--node-only keeps the agents; an agent whose node has no live cert still cannot renew (403 node_not_live)', async () => {
  const { agents } = await nodeWithAgents('ct112', ['opus']);
  const opus = agents[0]!;
  const r = await cli(fx.ca, ['revoke', 'ct112', '--node-only', '--reason', 'cessationOfOperation', '--no-push']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.not.match(r.stdout, /opus@ct112/);
  const row = (await readDb(fx.ca.store.intermediateDir)).find((e) => e.serial === serialOf(opus.cert));
  assert.is(row?.status, 'V', 'the agent stays valid');
  // The attack: the agent renews at /renew (from a cert inside its renewal window).
  const old = await backdated(
    fx.ca,
    { kind: 'agent', agentId: agentId('opus'), nodeId: nodeId('ct112') },
    opus.keyFile,
    70,
    { retire: true },
  );
  const before = caState(fx.ca);
  for (let i = 0; i < 3; i++) {
    const res = await call(fx, 'POST', '/renew', {
      body: { csr: (await newCsr(fx.work, opus.cn, opus.keyFile)).csr },
      cert: old,
      key: opus.key,
    });
    assert.is(res.status, 403, res.text);
    assert.is(res.json.error.code, 'node_not_live');
    assert.match(res.json.error.message, /node ct112 holds no live certificate/);
  }
  assert.equal(caState(fx.ca), before, 'nothing signed');
  const usage = await cli(fx.ca, ['revoke', 'opus@ct112', '--node-only', '--no-push']);
  assert.is(usage.exitCode, 2);
  assert.match(usage.stderr, /--node-only is for revoking a node/);
});

test('revokeSerials writes the rows `openssl ca -revoke` writes, for many serials in one write', async () => {
  const { agents } = await nodeWithAgents('ct113', ['a1', 'a2', 'a3']);
  const serials = agents.map((a) => serialOf(a.cert));
  const copies = await Promise.all(
    ['openssl', 'ours'].map(async (name) => {
      const dir = path.join(await tempDir(), name);
      fs.cpSync(fx.ca.store.intermediateDir, dir, { recursive: true });
      return { ...(await fx.ca.store.current()), dir, cert: path.join(dir, 'int.crt'), key: path.join(dir, 'int.key') };
    }),
  );
  const [viaOpenssl, ours] = copies as [(typeof copies)[0], (typeof copies)[0]];
  await withTempDir(async (tmp) => {
    const conf = path.join(tmp, 'ca.cnf');
    fs.writeFileSync(conf, renderFile('ca.cnf', { digest: 'sha256', copy_extensions: 'none' }));
    for (const serial of serials) {
      await execa(
        'openssl',
        [
          'ca',
          '-batch',
          '-config',
          conf,
          '-cert',
          viaOpenssl.cert,
          '-keyfile',
          viaOpenssl.key,
          '-revoke',
          path.join('newcerts', `${serial}.pem`),
          '-crl_reason',
          'keyCompromise',
        ],
        { cwd: viaOpenssl.dir },
      );
    }
  });
  assert.equal(
    await revokeSerials(ours, [...serials, 'ABCDEF'], 'keyCompromise'),
    ['ABCDEF'],
    'an unknown serial is reported, not added',
  );
  const strip = (dir: string) =>
    fs
      .readFileSync(path.join(dir, 'index.txt'), 'utf8')
      .split('\n')
      .map((l) => l.replace(/^R\t(\S+)\t\d{12}Z,/, 'R\t$1\tTIME,'));
  assert.equal(strip(ours.dir), strip(viaOpenssl.dir), 'same rows but for the revocation second');
  assert.ok(strip(ours.dir).filter((l) => l.startsWith('R\t')).length >= 3);
});

test.run();
