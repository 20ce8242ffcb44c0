// The renewal timer (DESIGN §6 step 4): systemd units or an /etc/cron.d line, rendered from
// templates/ into `root` (default /, a temp dir in tests and the demo). Re-installing identical
// files changes nothing. Enabling a systemd timer is left to systemctl when root is not `/`.
import fs from 'node:fs';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { UsageError, show } from '../core/errors.ts';
import { PUBLIC_MODE, readText, writeAtomic } from '../sys/files.ts';
import { renderFile } from '../sys/template.ts';

export type TimerKind = 'systemd' | 'cron';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Paths end up in unit files and crontabs, where spaces, `%` and quotes mean something. */
function safePath(p: string, what: string): string {
  if (!/^\/[A-Za-z0-9._/@+-]*$/.test(p)) throw new UsageError(`${what} ${show(p)} must be an absolute path of letters, digits and ._/@+- (it is written into a timer file)`);
  return p;
}

function which(cmd: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  return `/usr/bin/${cmd}`;
}

export type TimerResult = { files: string[]; changed: string[]; next?: string };

export async function installTimer(kind: TimerKind, opts: { root: string; nodeDir: string }): Promise<TimerResult> {
  const values = {
    node_dir: safePath(path.resolve(opts.nodeDir), 'RIVET_NODE_DIR'),
    repo: safePath(REPO, 'the rivet-ca checkout'),
    make: safePath(which('make'), 'make'),
    provision: safePath(path.join(REPO, 'scripts', 'provision-ct.mts'), 'provision-ct'),
  };
  const root = path.resolve(opts.root);
  const out: Array<[string, string]> = [];
  if (kind === 'systemd') {
    const unitDir = path.join(root, 'etc', 'systemd', 'system');
    out.push([path.join(unitDir, 'rivet-renew.service'), renderFile('rivet-renew.service', { node_dir: values.node_dir, make: values.make, repo: values.repo })]);
    out.push([path.join(unitDir, 'rivet-renew.timer'), renderFile('rivet-renew.timer', {})]);
    out.push([path.join(unitDir, 'rivet-fetch-crl.service'), renderFile('rivet-fetch-crl.service', { node_dir: values.node_dir, provision: values.provision })]);
    out.push([path.join(unitDir, 'rivet-fetch-crl.timer'), renderFile('rivet-fetch-crl.timer', {})]);
  } else {
    const file = path.join(root, 'etc', 'cron.d', 'rivet-renew');
    // Keep the minute/hour of an existing file, so re-running enroll changes nothing.
    const kept = /^(\d{1,2}) (\d{1,2}) \* \* \* root /m.exec((await readText(file)) ?? '');
    out.push([file, renderFile('rivet-renew.cron', { ...values, minute: kept?.[1] ?? randomInt(60), hour: kept?.[2] ?? randomInt(1, 6) })]);
  }
  const changed: string[] = [];
  for (const [file, text] of out) {
    if ((await readText(file)) === text) continue;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    await writeAtomic(file, text, PUBLIC_MODE);
    changed.push(file);
  }
  let next: string | undefined;
  if (kind === 'systemd') {
    const enable = ['systemctl', 'enable', '--now', 'rivet-renew.timer', 'rivet-fetch-crl.timer'];
    if (root === '/' && changed.length) {
      const r = await execa('systemctl', ['daemon-reload'], { reject: false }).then(() => execa(enable[0]!, enable.slice(1), { reject: false }));
      next = r.exitCode === 0 ? 'timers enabled' : `could not enable the timers (${String(r.stderr).split('\n')[0]}) — run: systemctl daemon-reload && ${enable.join(' ')}`;
    } else if (root !== '/') {
      next = `installed under ${root}; on the real host run: systemctl daemon-reload && ${enable.join(' ')}`;
    }
  }
  return { files: out.map(([f]) => f), changed, next };
}
