// Writing service files (systemd units, /etc/cron.d lines) rendered from templates/ into a root
// (default /, a temp dir in tests and the demo). Re-installing identical files changes nothing.
// Shared by provision-ct's timers (lib/node/timer.ts) and the CA host's units (lib/ops/units.ts).
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { UsageError, show } from '../core/errors.ts';
import { PUBLIC_MODE, readText, writeAtomic } from './files.ts';
import { packageRoot } from './package-root.ts';

/** The checkout (or installed package) the units run tools from. */
export const REPO = packageRoot(import.meta.url);

/** Paths end up in unit files and crontabs, where spaces, `%` and quotes mean something. */
export function safePath(p: string, what: string): string {
  if (!/^\/[A-Za-z0-9._/@+-]*$/.test(p))
    throw new UsageError(
      `${what} ${show(p)} must be an absolute path of letters, digits and ._/@+- (it is written into a service file)`,
    );
  return p;
}

export function which(cmd: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return `/usr/bin/${cmd}`;
}

export type UnitsResult = { files: string[]; changed: string[]; next?: string };

/** Writes each [file, text] that differs; returns which changed. */
export async function writeUnits(
  files: ReadonlyArray<readonly [string, string]>,
): Promise<Pick<UnitsResult, 'files' | 'changed'>> {
  const changed: string[] = [];
  for (const [file, text] of files) {
    if ((await readText(file)) === text) continue;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    await writeAtomic(file, text, PUBLIC_MODE);
    changed.push(file);
  }
  return { files: files.map(([f]) => f), changed };
}

/**
 * On the real root, reloads systemd and enables the units that changed; under another root (tests,
 * staging an image) only says what to run there.
 */
export async function enableUnits(
  root: string,
  changed: readonly string[],
  units: readonly string[],
): Promise<string | undefined> {
  const enable = ['systemctl', 'enable', '--now', ...units];
  if (root !== '/')
    return `installed under ${root}; on the real host run: systemctl daemon-reload && ${enable.join(' ')}`;
  if (!changed.length) return undefined;
  const r = await execa('systemctl', ['daemon-reload'], { reject: false }).then(() =>
    execa(enable[0]!, enable.slice(1), { reject: false }),
  );
  return r.exitCode === 0
    ? `enabled ${units.join(', ')}`
    : `could not enable ${units.join(', ')} (${String(r.stderr).split('\n')[0]}) — run: systemctl daemon-reload && ${enable.join(' ')}`;
}
