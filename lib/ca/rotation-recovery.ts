// Finishing a committed intermediate rotation (lib/ops/rotate.ts starts it; the steps and why they
// are crash safe are described there). Recovery runs this under the CA lock before any change, so
// it lives with the CA state, below every operation.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { CaStore } from './store.ts';
import { writeBundleLocked, writeChainLocked } from './published.ts';
import { ensureDir, exists, syncDir, tempPathFor, TEMP_MARK } from '../sys/files.ts';
import { crashPoint } from '../sys/crash-point.ts';
import { RivetError } from '../core/errors.ts';

/** What belongs to one issuer in its directory (not the chain, other generations or temp files). */
async function issuerEntries(dir: string): Promise<string[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => !['previous', 'retired', 'chain.pem'].includes(n) && !n.startsWith(TEMP_MARK));
}

async function readGeneration(dir: string): Promise<number | undefined> {
  const n = Number((await fsp.readFile(path.join(dir, 'generation'), 'utf8').catch(() => '')).trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** fsync every file and directory under `dir` (openssl does not fsync what it writes). */
export async function syncTree(dir: string): Promise<void> {
  for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) await syncTree(p);
    else if (ent.isFile()) {
      const fh = await fsp.open(p, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
  }
  await syncDir(dir);
}

/** Hard-links a file, or a directory tree file by file (same filesystem: no bytes copied). */
async function linkTree(from: string, to: string): Promise<void> {
  const st = await fsp.lstat(from);
  if (!st.isDirectory()) {
    await fsp.link(from, to);
    return;
  }
  await fsp.mkdir(to, { mode: st.mode & 0o777 });
  for (const name of await fsp.readdir(from)) await linkTree(path.join(from, name), path.join(to, name));
}

/** Links one entry into `dir` atomically: a directory is built under a temp name, then renamed. */
async function installEntry(from: string, dir: string, name: string): Promise<void> {
  const target = path.join(dir, name);
  if ((await fsp.lstat(from)).isDirectory()) {
    const tmp = tempPathFor(target);
    await linkTree(from, tmp);
    await syncTree(tmp);
    await fsp.rename(tmp, target);
  } else {
    await fsp.link(from, target);
  }
}

/** Finishes a committed rotation; a no-op when none is pending. The caller holds the CA lock. */
export async function resumeRotation(store: CaStore): Promise<void> {
  const next = await store.pendingRotation();
  if (!next) return;
  const cur = store.intermediateDir;
  const oldGen = next.generation - 1;
  const prev = path.join(store.previousDir, String(oldGen));
  // 1. The old intermediate, complete, at previous/<n>.
  if (!(await exists(prev))) {
    if ((await readGeneration(cur)) !== oldGen || !(await exists(path.join(cur, 'int.crt')))) {
      throw new RivetError(
        `rotation to intermediate ${next.generation} cannot find intermediate ${oldGen} in ${cur} or ${prev} — restore it from a backup`,
        'rotation',
      );
    }
    await ensureDir(store.previousDir);
    const tmp = tempPathFor(prev);
    await fsp.mkdir(tmp, { mode: 0o700 });
    for (const name of await issuerEntries(cur)) await linkTree(path.join(cur, name), path.join(tmp, name));
    await syncTree(tmp);
    crashPoint('rotate-linked-old');
    await fsp.rename(tmp, prev);
    await syncDir(store.previousDir);
    crashPoint('rotate-moved-old');
  }
  // 2. Clear intermediate/ — unless step 3 already began (it links `generation` first).
  if ((await readGeneration(cur)) !== next.generation) {
    for (const name of await issuerEntries(cur)) {
      await fsp.rm(path.join(cur, name), { recursive: true, force: true });
      crashPoint('rotate-clearing');
    }
    await syncDir(cur);
  }
  // 3. The new intermediate into intermediate/, skipping what a killed run already linked.
  const names = (await issuerEntries(next.dir)).sort((a, b) => Number(b === 'generation') - Number(a === 'generation'));
  for (const name of names) {
    if (await exists(path.join(cur, name))) continue;
    await installEntry(path.join(next.dir, name), cur, name);
    crashPoint('rotate-installing');
  }
  await syncDir(cur);
  // 4. chain.pem and crl.pem carry both generations (read while intermediate.next is current).
  await writeChainLocked({ store });
  await writeBundleLocked({ store });
  crashPoint('rotate-published');
  // 5. One rename hands "current" from intermediate.next/ to intermediate/.
  const done = tempPathFor(next.dir);
  await fsp.rename(next.dir, done);
  await syncDir(store.dir);
  crashPoint('rotate-switched');
  await fsp.rm(done, { recursive: true, force: true });
}
