// Test helpers: a fresh CA per test file (real openssl, nothing committed), the real CLI as a child
// process, and snapshots of a directory for "byte-identical after a refusal" checks.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { bundleState } from '../../scripts/bundle-state.mjs';
import { openCa, type Ca } from '../../lib/ca/handle.ts';
import { meshDomain } from '../../lib/core/identity.ts';
import { initRoot, issueIntermediate } from '../../lib/ops/hierarchy.ts';
import { tempDir } from './temp.ts';
import { nameConstraintChoice } from '../../lib/policy/name-constraints.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'scripts', 'rivet-ca.mts');

export { tempDir };

// A CLI bundle older than the sources sends every CLI start through tsx (seconds per suite) and
// adds the launcher's one-line note to stderr, which the one-line assertions would trip on: a suite
// run on its own rebuilds it once first (make test's runner already did).
if (['rivet-ca', 'provision-ct'].some((tool) => !bundleState(ROOT, tool).manifest)) {
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['scripts/build.mts', '--best-effort'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/**
 * A new CA (root + intermediate) in a temp directory, made through the library. `permit`: names
 * the intermediate's name constraints also permit (e.g. `DNS:lan`), as `issue-intermediate --permit`.
 */
export async function freshCa(opts: { permit?: string[] } = {}): Promise<Ca> {
  const dir = path.join(await tempDir(), 'ca');
  const ca = openCa(dir, meshDomain('mesh'));
  await initRoot(ca);
  await issueIntermediate(ca, { names: nameConstraintChoice({ permit: opts.permit }) });
  return ca;
}

export type CliResult = { exitCode: number; stdout: string; stderr: string };

/** Runs scripts/rivet-ca.mts for real, as an operator would. */
export async function cli(
  ca: Ca | string,
  args: string[],
  opts: { env?: Record<string, string>; input?: string; cwd?: string } = {},
): Promise<CliResult> {
  const dir = typeof ca === 'string' ? ca : ca.store.dir;
  const r = await execa(CLI, args, {
    reject: false,
    env: { RIVET_CA_DIR: dir, RIVET_ENV_FILE: '/dev/null', ...opts.env },
    input: opts.input ?? '',
    cwd: opts.cwd ?? os.tmpdir(),
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Every file under `dir` with its mode and content hash: equal snapshots mean byte-identical. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      const st = fs.lstatSync(p);
      const rel = path.relative(dir, p);
      if (ent.isDirectory()) {
        out[`${rel}/`] = (st.mode & 0o7777).toString(8);
        walk(p);
      } else
        out[rel] =
          `${(st.mode & 0o7777).toString(8)} ${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

export async function opensslOk(args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await execa('openssl', args, { reject: false, env: { OPENSSL_CONF: '/dev/null' } });
  return { ok: r.exitCode === 0, out: `${r.stdout}\n${r.stderr}` };
}
