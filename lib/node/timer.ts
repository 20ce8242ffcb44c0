// The renewal timer (DESIGN §6 step 4): systemd units or an /etc/cron.d line, rendered from
// templates/ into `root` (default /, a temp dir in tests and the demo). Re-installing identical
// files changes nothing. Enabling a systemd timer is left to systemctl when root is not `/`.
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { readText } from '../sys/files.ts';
import { renderFile } from '../sys/template.ts';
import { REPO, enableUnits, safePath, which, writeUnits, type UnitsResult } from '../sys/units.ts';

export type TimerKind = 'systemd' | 'cron';
export type TimerResult = UnitsResult;
export { REPO };

export async function installTimer(
  kind: TimerKind,
  opts: { root: string; nodeDir: string; caDir: string },
): Promise<TimerResult> {
  const values = {
    ca_dir: safePath(path.resolve(opts.caDir), 'RIVET_CA_DIR'),
    node_dir: safePath(path.resolve(opts.nodeDir), 'RIVET_NODE_DIR'),
    repo: safePath(REPO, 'the rivet-ca checkout'),
    make: safePath(which('make'), 'make'),
    provision: safePath(path.join(REPO, 'scripts', 'provision-ct.mts'), 'provision-ct'),
  };
  const root = path.resolve(opts.root);
  const out: Array<[string, string]> = [];
  if (kind === 'systemd') {
    const unitDir = path.join(root, 'etc', 'systemd', 'system');
    out.push([
      path.join(unitDir, 'rivet-renew.service'),
      renderFile('rivet-renew.service', {
        ca_dir: values.ca_dir,
        node_dir: values.node_dir,
        make: values.make,
        repo: values.repo,
      }),
    ]);
    out.push([path.join(unitDir, 'rivet-renew.timer'), renderFile('rivet-renew.timer', {})]);
    out.push([
      path.join(unitDir, 'rivet-fetch-crl.service'),
      renderFile('rivet-fetch-crl.service', { node_dir: values.node_dir, provision: values.provision }),
    ]);
    out.push([path.join(unitDir, 'rivet-fetch-crl.timer'), renderFile('rivet-fetch-crl.timer', {})]);
  } else {
    const file = path.join(root, 'etc', 'cron.d', 'rivet-renew');
    // Keep the minute/hour of an existing file, so re-running enroll changes nothing.
    const kept = /^(\d{1,2}) (\d{1,2}) \* \* \* root /m.exec((await readText(file)) ?? '');
    const { ca_dir: _caDir, ...cronValues } = values; // a node's cron line: no CA on a node
    out.push([
      file,
      renderFile('rivet-renew.cron', {
        ...cronValues,
        minute: kept?.[1] ?? randomInt(60),
        hour: kept?.[2] ?? randomInt(1, 6),
      }),
    ]);
  }
  const written = await writeUnits(out);
  const next =
    kind === 'systemd'
      ? await enableUnits(root, written.changed, ['rivet-renew.timer', 'rivet-fetch-crl.timer'])
      : undefined;
  return { ...written, next };
}
