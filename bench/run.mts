// `make bench`: every measurement of issue 8 in one run, side by side, written to BENCHMARKS.md
// with the machine and versions. Only ratios within one run compare (shared, noisy machines).
// BENCH_QUICK=1 shrinks every size for a smoke run (its numbers are not the benchmark).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI, EASYRSA, OUT, ROOT, SNAP, fmt, fresh, log } from './common.ts';
import { setup, single, roster } from './issuance.ts';
import { enrollBench } from './enroll.ts';
import { revocation, cutOnOpen, handshakes } from './mesh.ts';
import { growth } from './growth.ts';
import { hotPath } from './hot-path.ts';

const quick = process.env.BENCH_QUICK === '1';
const N = {
  single: quick ? 3 : 9,
  roster: quick ? 20 : 200,
  enroll: quick ? 32 : 256,
  clients: 32,
  victims: quick ? 1 : 3,
  crl: 10_000,
  hsSeconds: quick ? 1 : 3,
  growth: quick ? [100, 1000] : [100, 10_000, 100_000],
  growthSamples: quick ? 3 : 15,
};
const sh = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
};

// 1. Snapshot the sources under test and build the CLI bundle there.
fresh(OUT);
fs.mkdirSync(SNAP);
for (const p of ['lib', 'scripts', 'templates', 'package.json', 'package-lock.json', 'tsconfig.json'])
  fs.cpSync(path.join(ROOT, p), path.join(SNAP, p), { recursive: true });
fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(SNAP, 'node_modules'));
const build = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(SNAP, 'scripts', 'build.mts')], {
  encoding: 'utf8',
});
const probe = spawnSync(CLI, ['--help'], { encoding: 'utf8', env: { ...process.env, RIVET_DEBUG: '1' } });
const bundled = build.status === 0 && !/stale|missing/.test(probe.stderr);
log(bundled ? 'CLI runs from the esbuild bundle' : `CLI runs through tsx: ${build.stderr.trim()}`);

const work = path.join(OUT, 'work');
const started = new Date();
const load0 = os.loadavg();
log('1/6 single issuance');
const s = setup(work);
const one = single(s, N.single);
log(`single: rivet ${fmt(one.rivet)} ms, easy-rsa ${fmt(one.easyrsa)} ms, floor ${fmt(one.floor)} ms`);
log(`2/6 roster of ${N.roster}`);
const ros = await roster(s, N.roster);
log('3/6 enrollment');
const en = await enrollBench(work, N.enroll, N.clients);
log('4/6 revocation to enforcement');
const rev = await revocation(work, N.victims);
const cut = await cutOnOpen(work, N.victims);
log('5/6 handshakes');
const hs = await handshakes(work, N.crl, N.hsSeconds);
log('6/6 growth');
const gr = await growth(work, N.growth, N.growthSamples);
log('and: hot path (bench/hot-path.ts)');
const hp = await hotPath(work, N.hsSeconds);
const load1 = os.loadavg();

// Report.
const rate = (n: number, ms: number) => (n * 1000) / ms;
const g = (h: number, t = true) => gr.find((p) => p.history === h && p.tidied === t);
const g0 = g(N.growth[0]!)!,
  gMax = g(Math.max(...N.growth))!,
  gRaw = g(Math.max(...N.growth), false)!;
type Row = [string, string, string, string, string, boolean | undefined];
const rows: Row[] = [
  [
    '1. single issuance (wall, median of ' + one.runs + ')',
    `${fmt(one.rivet)} ms`,
    `easy-rsa ${fmt(one.easyrsa)} ms · openssl floor ${fmt(one.floor)} ms · \`node -e 0\` alone ${fmt(one.nodeStart)} ms (${(one.nodeStart / one.easyrsa).toFixed(2)}×)`,
    `${(one.rivet / one.easyrsa).toFixed(2)}× easy-rsa time`,
    '≤ 0.8×',
    one.rivet / one.easyrsa <= 0.8,
  ],
  [
    `2. roster of ${ros.n} (throughput)`,
    `${fmt(rate(ros.n, ros.rivetMs), 1)}/s (${fmt(ros.rivetMs / 1000, 1)} s)`,
    `easy-rsa loop ${fmt(rate(ros.n, ros.easyrsaMs), 1)}/s (${fmt(ros.easyrsaMs / 1000, 1)} s) · floor ${fmt(rate(ros.n, ros.floorMs), 1)}/s on ${os.availableParallelism()} cores`,
    `${(ros.easyrsaMs / ros.rivetMs).toFixed(1)}× easy-rsa`,
    '≥ 10×',
    ros.easyrsaMs / ros.rivetMs >= 10,
  ],
  [
    `3a. /enroll, ${en.clients} clients, fresh TLS each (${en.enroll.requests} req)`,
    `${fmt(en.enroll.perSecond, 1)}/s · p50 ${fmt(en.enroll.p50)} ms · p99 ${fmt(en.enroll.p99)} ms · ${en.enroll.errors} errors`,
    `cfssl authsign ${fmt(en.cfssl.perSecond, 1)}/s · p50 ${fmt(en.cfssl.p50)} ms · p99 ${fmt(en.cfssl.p99)} ms · ${en.cfssl.errors} errors (${en.cfssl.requests} req)`,
    `${(en.enroll.perSecond / en.cfssl.perSecond).toFixed(2)}× cfssl`,
    '≥ 0.2×, p99 ≤ 250 ms, 0 errors',
    en.enroll.perSecond / en.cfssl.perSecond >= 0.2 && en.enroll.p99 <= 250 && en.enroll.errors === 0,
  ],
  [
    `3b. /renew over mTLS, ${en.clients} clients (${en.renew.requests} req)`,
    `${fmt(en.renew.perSecond, 1)}/s · p50 ${fmt(en.renew.p50)} ms · p99 ${fmt(en.renew.p99)} ms · ${en.renew.errors} errors`,
    'same cfssl run',
    `${(en.renew.perSecond / en.cfssl.perSecond).toFixed(2)}× cfssl`,
    '≥ 0.2×, p99 ≤ 250 ms, 0 errors',
    en.renew.perSecond / en.cfssl.perSecond >= 0.2 && en.renew.p99 <= 250 && en.renew.errors === 0,
  ],
  rev.available
    ? [
        `4. revoke → refused by all 5 servers (worst of ${rev.victims})`,
        `${fmt(rev.enforcedAfterReturnMs)} ms after revoke returned`,
        `revoke itself ${fmt(rev.revokeMs)} ms (incl. push); ${fmt(rev.enforcedAfterStartMs)} ms from its start`,
        '—',
        '≤ 1000 ms',
        rev.enforcedAfterReturnMs <= 1000,
      ]
    : ['4. revoke → refused by all 5 servers', 'not measured', rev.note ?? '', '—', '≤ 1000 ms', undefined],
  cut.available
    ? [
        `4b. revoke → cut on open connections, 5 servers (${cut.connections} keep-alive connections, ${cut.victims} revocations)`,
        `worst ${fmt(cut.worstMs)} ms · median ${fmt(cut.medianMs)} ms from revoke's start`,
        `revoke itself ${fmt(cut.revokeMs)} ms (incl. push); worst ${fmt(cut.worstAfterReturnMs)} ms after it returned; a valid agent's 5 connections ${cut.kept ? 'stayed open' : '**were cut**'}`,
        '—',
        '≤ 1000 ms after revoke returned, valid kept',
        cut.worstAfterReturnMs <= 1000 && cut.kept,
      ]
    : ['4b. revoke → cut on open connections', 'not measured', cut.note ?? '', '—', '≤ 1000 ms', undefined],
  [
    `5. TLS 1.3 mTLS handshakes/s, ${hs.crlEntries.toLocaleString('en')}-entry CRL`,
    `${fmt(hs.crl10k)}/s`,
    `no CRL ${fmt(hs.none)}/s`,
    `${(hs.crl10k / hs.none).toFixed(2)}× no CRL`,
    '≥ 0.9×',
    hs.crl10k / hs.none >= 0.9,
  ],
  [
    `6. issuance at ${gMax.history.toLocaleString('en')} history (after tidy)`,
    `${fmt(gMax.ms, 1)} ms`,
    `${N.growth.map((h) => `${h.toLocaleString('en')}: ${fmt(g(h)!.ms, 1)} ms`).join(' · ')} · ${gRaw.history.toLocaleString('en')} without tidy: ${fmt(gRaw.ms, 1)} ms`,
    `${(gMax.ms / g0.ms).toFixed(2)}× at ${g0.history}`,
    '≤ 1.2×',
    gMax.ms / g0.ms <= 1.2,
  ],
  [
    `7a. keep-alive requests/s, lib server (meshServerOptions + peerIdentity + authorize per request)`,
    `${fmt(hp.keepAlive.lib)}/s`,
    `bare node:https ${fmt(hp.keepAlive.bare)}/s, same certs and CRLs (median of ${hp.rounds} rounds)`,
    `${(hp.keepAlive.lib / hp.keepAlive.bare).toFixed(2)}× bare`,
    '≥ 0.9×',
    hp.keepAlive.lib / hp.keepAlive.bare >= 0.9,
  ],
  [
    `7b. fresh handshakes/s (new TLS connection + one request), lib server`,
    `${fmt(hp.handshakes.lib)}/s`,
    `bare node:https ${fmt(hp.handshakes.bare)}/s`,
    `${(hp.handshakes.lib / hp.handshakes.bare).toFixed(2)}× bare`,
    '≥ 0.95×',
    hp.handshakes.lib / hp.handshakes.bare >= 0.95,
  ],
];
const verdict = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? '**met**' : '**missed**');
const cpu = (os.cpus()[0]?.model ?? 'unknown').trim();
const git = sh('git', ['-C', ROOT, 'describe', '--always', '--dirty']);
const md = `# rivet-ca benchmarks

Generated by \`make bench\` (bench/run.mts) on ${started.toISOString()}${quick ? ' — **BENCH_QUICK smoke run, sizes reduced**' : ''}.
Every number below comes from this one run; compare ratios, not absolute times (the machine is shared).
What each line measures and how: [bench/README.md](bench/README.md).

| | |
|---|---|
| machine | ${cpu}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()} |
| load average | ${load0.map((x) => x.toFixed(1)).join(' ')} at start, ${load1.map((x) => x.toFixed(1)).join(' ')} at end |
| rivet-ca | ${git}, CLI ${bundled ? 'from the esbuild bundle (dist/)' : 'through tsx (bundle unavailable)'} |
| node / openssl | ${process.version} / ${sh('openssl', ['version'])} |
| easy-rsa | ${
  sh(EASYRSA, ['--version'])
    .split('\n')
    .find((l) => /^\s*Version:/.test(l))
    ?.trim() ?? 'unknown'
} (EC P-256, nopass, EASYRSA_BATCH=1) |
| cfssl | ${sh('cfssl', ['version']).split('\n').slice(0, 2).join(', ')} |

| measurement | rivet-ca | beside it | ratio | target | result |
|---|---|---|---|---|---|
${rows.map((r) => `| ${r[0]} | ${r[1]} | ${r[2]} | ${r[3]} | ${r[4]} | ${verdict(r[5])} |`).join('\n')}

Growth detail: ${gr.map((p) => `${p.history.toLocaleString('en')}${p.tidied ? ` (tidy took ${fmt(p.tidyMs ?? NaN)} ms)` : ' (no tidy)'}: ${fmt(p.ms, 1)} ms`).join('; ')}.
${en.enroll.firstError || en.renew.firstError || en.cfssl.firstError ? `\nFirst errors: ${[en.enroll.firstError, en.renew.firstError, en.cfssl.firstError].filter(Boolean).join(' | ')}\n` : ''}`;
fs.writeFileSync(path.join(ROOT, quick ? path.join('bench', 'out', 'BENCHMARKS.md') : 'BENCHMARKS.md'), md);
process.stdout.write(md);
fs.rmSync(work, { recursive: true, force: true });
