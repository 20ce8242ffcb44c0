// The CA host's systemd units (`rivet-ca install-units`): the enrollment service, and the daily
// `make renew` that renews CA-side (and node-side, the CA host being a node of its own mesh).
// The renew units are the same files provision-ct installs on a node (templates/rivet-renew.*).
import path from 'node:path';
import { renderFile } from '../sys/template.ts';
import { REPO, enableUnits, safePath, which, writeUnits, type UnitsResult } from '../sys/units.ts';

export type CaUnitsOptions = { root: string; caDir: string; nodeDir: string; secretFile: string; listen: string };

export async function installCaUnits(opts: CaUnitsOptions): Promise<UnitsResult> {
  const root = path.resolve(opts.root);
  const unitDir = path.join(root, 'etc', 'systemd', 'system');
  const nodeDir = safePath(path.resolve(opts.nodeDir), 'RIVET_NODE_DIR');
  const files: Array<[string, string]> = [
    [
      path.join(unitDir, 'rivet-serve.service'),
      renderFile('rivet-serve.service', {
        ca_dir: safePath(path.resolve(opts.caDir), 'RIVET_CA_DIR'),
        node_dir: nodeDir,
        secret_file: safePath(path.resolve(opts.secretFile), '--secret-file'),
        rivet: safePath(path.join(REPO, 'scripts', 'rivet-ca.mts'), 'rivet-ca'),
        listen: opts.listen,
      }),
    ],
    [
      path.join(unitDir, 'rivet-renew.service'),
      renderFile('rivet-renew.service', {
        ca_dir: safePath(path.resolve(opts.caDir), 'RIVET_CA_DIR'),
        node_dir: nodeDir,
        make: safePath(which('make'), 'make'),
        repo: safePath(REPO, 'the rivet-ca checkout'),
      }),
    ],
    [path.join(unitDir, 'rivet-renew.timer'), renderFile('rivet-renew.timer', {})],
  ];
  const written = await writeUnits(files);
  return { ...written, next: await enableUnits(root, written.changed, ['rivet-serve.service', 'rivet-renew.timer']) };
}
