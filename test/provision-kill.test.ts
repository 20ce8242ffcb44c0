// Killing `provision-ct enroll` (SIGKILL) at random instants and re-running it ends enrolled, with
// no half-written file in RIVET_NODE_DIR. Each node is killed up to KILLS_PER_NODE times in a row
// (each run starting from what the previous one left), then one run is allowed to finish. After
// every kill, every file under its final name must be whole: keys and certs parse, node.json is
// JSON; only `.rivet-tmp-*` files (which the next run sweeps) may be partial.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { startServed, mustOk, filesUnder, SECRET, type Served } from './helpers/provision.ts';
import { parseCertsPem, publicKeyDer } from '../lib/x509/cert.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';
import { publicKeyOfPrivatePem } from '../lib/core/keys.ts';

/** Kill until this many runs died; nodes are enrolled one after another until then (bounded). */
const TARGET_KILLS = 15;
const MAX_NODES = 12;
const KILLS_PER_NODE = 3;
/**
 * When to kill: a random delay after the process starts, or after a progress line (the pin done,
 * node.crt installed, the first agent minted) so the kills also land between those steps.
 */
const TRIGGERS: Array<{ after?: RegExp; maxMs: number; minMs?: number }> = [
  { minMs: 50, maxMs: 500 },
  { after: /pinned root/, maxMs: 150 },
  { after: /enrolled ct\d+\.mesh: serial/, maxMs: 80 },
  { after: /agent \w+@ct\d+: serial/, maxMs: 60 },
];

let s: Served;
test.before(async () => {
  s = await startServed();
});
test.after(async () => {
  await s.close();
});

/** Throws naming the first file under its final name that is not whole. */
function checkWhole(dir: string): void {
  for (const rel of filesUnder(dir)) {
    const name = path.basename(rel);
    if (name.startsWith('.rivet-tmp-') || name.endsWith('.lock')) continue;
    const text = fs.readFileSync(path.join(dir, rel), 'utf8');
    try {
      if (name.endsWith('.key') || name.endsWith('.key.next')) createPrivateKey(text);
      else if (name.endsWith('.crt')) {
        if (parseCertsPem(text).length === 0) throw new Error('no certificate');
      } else if (name === 'crl.pem') {
        if (parseCrlBundle(text).length === 0) throw new Error('no CRL');
      } else if (name === 'node.json' || name === 'crl-state.json') JSON.parse(text);
      else throw new Error('unexpected file');
    } catch (err) {
      throw new Error(`${rel} in ${dir} is not whole: ${(err as Error).message}`);
    }
  }
}

test(`SIGKILL at random points (${TARGET_KILLS} kills), then a re-run: enrolled, nothing half-written`, async () => {
  const stages: Record<string, number> = {};
  const delays: string[] = [];
  let kills = 0;
  let attempts = 0;
  for (let n = 0; kills < TARGET_KILLS && n < MAX_NODES; n++) {
    const node = `ct${150 + n}`;
    const dir = path.join(s.home, node);
    const args = [
      'enroll',
      '--node-id',
      node,
      ...s.datahubArgs,
      '--ca-fingerprint',
      s.fingerprint,
      '--agent',
      'opus',
      '--agent',
      'grok',
    ];
    for (let k = 0; k < KILLS_PER_NODE && kills < TARGET_KILLS; k++) {
      const trigger = TRIGGERS[attempts++ % TRIGGERS.length]!;
      const child = s.spawnProvision(dir, args, { RIVET_BOOTSTRAP_SECRET: SECRET });
      const delay = (trigger.minMs ?? 0) + Math.floor(Math.random() * (trigger.maxMs - (trigger.minMs ?? 0)));
      delays.push(`${trigger.after ? trigger.after.source.split(' ')[0] : 'start'}+${delay}`);
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        timer ??= setTimeout(() => child.kill('SIGKILL'), delay);
      };
      if (!trigger.after) arm();
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        if (trigger.after?.test(out)) arm();
      });
      const r = await child;
      clearTimeout(timer);
      const files = filesUnder(dir).filter((f) => !f.includes('.rivet-tmp-'));
      const killed = r.signal === 'SIGKILL';
      const stage = killed
        ? `killed with ${files.length ? files.join('+') : 'nothing'}`
        : `finished (exit ${r.exitCode})`;
      stages[stage] = (stages[stage] ?? 0) + 1;
      checkWhole(dir);
      if (!killed) {
        assert.is(r.exitCode, 0, `${node}: an unkilled run succeeds: ${r.stderr}`);
        break;
      }
      kills++;
    }
    const done = mustOk(await s.provision(dir, args, { RIVET_BOOTSTRAP_SECRET: SECRET }), `final enroll of ${node}`);
    assert.match(done.stdout, new RegExp(`${node}\\.mesh (enrolled|is already enrolled)`));
    checkWhole(dir);
    assert.equal(
      filesUnder(dir),
      [
        'agents/grok.crt',
        'agents/grok.key',
        'agents/opus.crt',
        'agents/opus.key',
        'crl-state.json',
        'crl.pem',
        'node.crt',
        'node.json',
        'node.key',
        'rivet-ca.crt',
      ],
      `${node}: exactly the enrolled files, no temp or lock left`,
    );
    const leaf = parseCertsPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8'))[0]!;
    assert.ok(
      publicKeyDer(leaf.x509).equals(
        publicKeyDer(publicKeyOfPrivatePem(fs.readFileSync(path.join(dir, 'node.key'), 'utf8'))),
      ),
      `${node}: node.crt matches node.key`,
    );
    const st = mustOk(await s.provision(dir, ['status', '--json']), `status ${node}`);
    assert.equal(JSON.parse(st.stdout).problems, [], `${node}: status has nothing to report`);
  }
  const resumed = fs
    .readFileSync(s.ca.store.auditLog, 'utf8')
    .split('\n')
    .filter((l) => /"cn":"ct1[56]\d\.mesh".*resumed/.test(l)).length;
  process.stderr.write(
    `\n${kills} kills; ${resumed} enrollments resumed by the service (same key); stages: ${JSON.stringify(stages, null, 1)}\ndelays (ms): ${delays.join(' ')}\n`,
  );
  assert.is(kills, TARGET_KILLS, `${TARGET_KILLS} runs were killed within ${MAX_NODES} nodes`);
  assert.ok(
    Object.keys(stages).filter((k) => k.startsWith('killed')).length >= 3,
    'the kills landed at three or more different stages',
  );
});

test.run();
