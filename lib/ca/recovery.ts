// What a killed run can leave in a CA directory, and putting it right: temp files, a half-committed
// openssl database, a committed but unfinished rotation. Runs under the CA lock before every change.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { CaStore } from './store.ts';
import { resumeRotation } from './rotation-recovery.ts';
import { exists, removeStaleTemps } from '../sys/files.ts';
import { serialOf } from '../x509/serial.ts';

export async function recoverStore(store: CaStore): Promise<void> {
  await removeStaleTemps(store.previousDir);
  await removeStaleTemps(store.retiredDir);
  const dirs = [store.dir, store.issuedDir, store.rootDir, store.intermediateDir];
  try {
    for (const n of await fsp.readdir(store.previousDir)) dirs.push(path.join(store.previousDir, n));
  } catch {
    /* none */
  }
  for (const d of dirs) {
    await removeStaleTemps(d);
    if (d !== store.dir && d !== store.issuedDir) await recoverOpensslDb(d);
  }
  if (await exists(store.nextDir)) await resumeRotation(store);
}

/**
 * `openssl ca` commits by writing index.txt.new (and the certs), then renaming index.txt to .old
 * and .new to index.txt. Killed before the first rename: roll back (drop .new and the orphan
 * certs it wrote). Killed between the renames: roll forward (.new is complete).
 */
export async function recoverOpensslDb(dir: string): Promise<void> {
  const p = (n: string) => path.join(dir, n);
  for (const base of ['index.txt', 'index.txt.attr', 'crlnumber', 'serial']) {
    if (!(await exists(p(`${base}.new`)))) continue;
    if (!(await exists(p(base)))) {
      await fsp.rename(p(`${base}.new`), p(base));
      continue;
    }
    await fsp.rm(p(`${base}.new`), { force: true });
    if (base === 'index.txt') await removeOrphanCerts(dir);
  }
}

async function removeOrphanCerts(dir: string): Promise<void> {
  const index = await fsp.readFile(path.join(dir, 'index.txt'), 'utf8').catch(() => '');
  const known = new Set(
    index
      .split('\n')
      .map((l) => l.split('\t')[3])
      .filter((s): s is string => Boolean(s))
      .map(serialOf),
  );
  const certDir = path.join(dir, 'newcerts');
  for (const name of await fsp.readdir(certDir).catch(() => [] as string[])) {
    const serial = serialOf(name.replace(/\.pem$/, ''));
    if (!known.has(serial)) await fsp.rm(path.join(certDir, name), { force: true });
  }
}
