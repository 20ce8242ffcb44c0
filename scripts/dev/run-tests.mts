// The test runner behind `make check`, `make test` and `make test-all` (TESTING.md): the unit tier
// (test/unit/**, in-process, one uvu process) and every end-to-end suite (test/*.test.ts, one uvu
// process each) run as jobs, at most --workers at a time, longest first by the durations of the
// last run. Each job's output is printed untouched when it ends — uvu's own `Total:`/`Passed:`
// summary included, which .ci/run adds up — then one `N passed, N failed` line for all of them.
//
//   node --import tsx scripts/dev/run-tests.mts [--unit | --all] [--workers N] [name …]
//
// --unit: only the unit tier. Default: unit + end-to-end without the suites that need more than
// Node and openssl (EXTRA). --all: those too. Names pick suites (`crash hostile`). Before any job
// starts, a CLI bundle that is stale or missing is rebuilt once (scripts/build.mts --best-effort):
// otherwise every CLI start in every suite goes through tsx.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bundleState } from '../bundle-state.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TEST_DIR = path.join(ROOT, 'test');
/** Suites that need the verifiers, SoftHSM or faketime (test/setup/install-deps.sh), the npm registry (package), or root and network namespaces (multihost). */
const EXTRA = ['interop', 'pkcs11', 'expiry', 'skew', 'package', 'multihost'];
const UNIT = 'unit';
/** Seconds per job from the last run here (git-ignored), else the committed ones, for the order. */
const MEASURED = path.join(ROOT, '.cache', 'test-durations.json');
const COMMITTED = path.join(TEST_DIR, 'durations.json');
const UNKNOWN_S = 30;
const TIMEOUT_S = Number(process.env.RIVET_TEST_TIMEOUT_S ?? 900);

type Job = { name: string; pattern: string; estimate: number };
type Outcome = { job: Job; seconds: number; total: number; passed: number; exitCode: number | null; note?: string };

function usage(message: string): never {
  process.stderr.write(`run-tests: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]) {
  const opts = {
    tier: 'default' as 'unit' | 'default' | 'all',
    workers: Number(process.env.TEST_WORKERS ?? 3),
    names: [] as string[],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--unit') opts.tier = 'unit';
    else if (a === '--all') opts.tier = 'all';
    else if (a === '--workers') opts.workers = Number(argv[++i]);
    else if (a.startsWith('--workers=')) opts.workers = Number(a.slice('--workers='.length));
    else if (a.startsWith('-')) usage(`unknown option ${a} — see the top of scripts/dev/run-tests.mts`);
    else opts.names.push(a.replace(/\.test\.ts$/, ''));
  }
  if (!Number.isInteger(opts.workers) || opts.workers < 1 || opts.workers > 16)
    usage(`--workers ${opts.workers} must be a whole number from 1 to 16`);
  return opts;
}

function readDurations(): Record<string, number> {
  for (const file of [MEASURED, COMMITTED]) {
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, number>;
    } catch {
      /* next */
    }
  }
  return {};
}

function jobs(tier: 'unit' | 'default' | 'all', names: string[]): Job[] {
  const known = readDurations();
  const suites = fs
    .readdirSync(TEST_DIR)
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => f.slice(0, -'.test.ts'.length));
  const picked = tier === 'unit' ? [] : suites.filter((s) => tier === 'all' || !EXTRA.includes(s));
  const list: Job[] = [
    { name: UNIT, pattern: `^${UNIT}/.*\\.test\\.ts$`, estimate: known[UNIT] ?? 5 },
    ...picked.map((s) => ({
      name: s,
      pattern: `^${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.test\\.ts$`,
      estimate: known[s] ?? UNKNOWN_S,
    })),
  ];
  const chosen = names.length ? list.filter((j) => names.includes(j.name)) : list;
  const unknown = names.filter((n) => !list.some((j) => j.name === n));
  if (unknown.length)
    usage(`no suite ${unknown.join(', ')} — suites are test/<name>.test.ts, and ${UNIT} for test/unit/`);
  return chosen.sort((a, b) => b.estimate - a.estimate);
}

/** A CLI bundle that does not match the sources would send every CLI start through tsx. */
function freshBundles(): void {
  const stale = ['rivet-ca', 'provision-ct'].filter((t) => !bundleState(ROOT, t).manifest);
  if (!stale.length) return;
  process.stderr.write(`run-tests: dist/ bundle of ${stale.join(', ')} is stale or missing — building once first\n`);
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['scripts/build.mts', '--best-effort'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

// eslint-disable-next-line no-control-regex -- uvu colours its summary with ANSI escapes
const ANSI = /\x1b\[[0-9;]*m/g;
const children = new Set<number>();

function runJob(job: Job): Promise<Outcome> {
  const started = performance.now();
  // Its own process group, so a timeout or Ctrl-C ends the suite's servers and CLIs with it.
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join('node_modules', 'uvu', 'bin.js'), 'test', job.pattern],
    {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.add(child.pid!);
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stderr.on('data', (d: Buffer) => chunks.push(d));
  let note: string | undefined;
  const timer = setTimeout(() => {
    note = `run-tests: ${job.name} still running after ${TIMEOUT_S} s — killed (RIVET_TEST_TIMEOUT_S)`;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, TIMEOUT_S * 1000);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child.pid!);
      const out = Buffer.concat(chunks).toString('utf8');
      process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
      if (note) process.stdout.write(`${note}\n`);
      const clean = out.replace(ANSI, '');
      const count = (label: string) => Number(new RegExp(`^ *${label}: *(\\d+)`, 'm').exec(clean)?.[1] ?? 0);
      resolve({
        job,
        seconds: (performance.now() - started) / 1000,
        total: count('Total'),
        passed: count('Passed'),
        exitCode: code,
        note,
      });
    });
  });
}

async function pool(list: Job[], workers: number): Promise<Outcome[]> {
  const queue = [...list];
  const done: Outcome[] = [];
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const o = await runJob(job);
      done.push(o);
      const bad = o.exitCode !== 0 || o.passed < o.total || o.total === 0;
      process.stderr.write(
        `run-tests: [${done.length}/${list.length}] ${o.job.name} ${o.seconds.toFixed(1)} s${bad ? ' FAILED' : ''}\n`,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, list.length) }, worker));
  return done;
}

function saveDurations(outcomes: Outcome[]): void {
  const all = { ...readDurations() };
  for (const o of outcomes) if (o.exitCode === 0) all[o.job.name] = Math.round(o.seconds * 10) / 10;
  fs.mkdirSync(path.dirname(MEASURED), { recursive: true });
  fs.writeFileSync(
    MEASURED,
    `${JSON.stringify(Object.fromEntries(Object.entries(all).sort(([, a], [, b]) => b - a)), null, 1)}\n`,
  );
}

const opts = parseArgs(process.argv.slice(2));
const list = jobs(opts.tier, opts.names);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    for (const pid of children)
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    process.exit(130);
  });
}
if (opts.tier !== 'unit') freshBundles();
const wall = performance.now();
const outcomes = await pool(list, opts.workers);
saveDurations(outcomes);

let passed = 0;
let failed = 0;
for (const o of outcomes) {
  passed += o.passed;
  // A suite that died after its tests (or before printing a summary) counts as one failure, as in .ci/run.
  const lost = o.total - o.passed;
  failed += lost > 0 ? lost : o.exitCode !== 0 || o.total === 0 ? 1 : 0;
}
const slowest = [...outcomes]
  .sort((a, b) => b.seconds - a.seconds)
  .slice(0, 5)
  .map((o) => `${o.job.name} ${o.seconds.toFixed(0)} s`)
  .join(', ');
process.stderr.write(
  `run-tests: ${outcomes.length} jobs on ${opts.workers} workers in ${((performance.now() - wall) / 1000).toFixed(1)} s; slowest: ${slowest}\n`,
);
const broken = outcomes.filter((o) => o.exitCode !== 0 || o.passed < o.total || o.total === 0).map((o) => o.job.name);
if (broken.length) process.stderr.write(`run-tests: failed: ${broken.join(', ')}\n`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
