// Atomic, permission-exact file writes (DESIGN §8): a temp file in the same directory, created with
// its final mode (0600 for keys, so a key is never readable by others, whatever the umask), fsync,
// rename, fsync of the directory. A crash leaves the old file or the new one, never a torn one.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export const KEY_MODE = 0o600;
export const PUBLIC_MODE = 0o644;
export const PRIVATE_DIR_MODE = 0o700;

/** Temp files carry this marker so crash recovery can find and remove them. */
export const TEMP_MARK = '.rivet-tmp-';

export function tempPathFor(target: string): string {
  return path.join(
    path.dirname(target),
    `${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}-${path.basename(target)}`,
  );
}

/** Creates a new, empty file with exactly `mode` (refuses to reuse an existing path). */
export async function createExclusive(file: string, mode: number): Promise<void> {
  const fh = await fsp.open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
  try {
    await fh.chmod(mode);
  } finally {
    await fh.close();
  }
}

export async function writeAtomic(target: string, data: string | Uint8Array, mode: number): Promise<void> {
  await commitRename(await stageFile(target, data, mode), target);
}

/**
 * The first half of writeAtomic for many files at once: writes `data` to a fresh temp file next
 * to `target` with exactly `mode` and fsyncs it; the caller renames it into place and syncs the
 * directory once for the whole group.
 */
export async function stageFile(target: string, data: string | Uint8Array, mode: number): Promise<string> {
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  return tmp;
}

/** Renames a fully written temp file into place and makes the rename durable. */
export async function commitRename(tmp: string, target: string): Promise<void> {
  await fsp.rename(tmp, target);
  await syncDir(path.dirname(target));
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function ensureDir(dir: string, mode = PRIVATE_DIR_MODE): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode });
  await fsp.chmod(dir, mode);
}

export async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch {
    return false;
  }
}

export async function readText(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Removes temp files left by a process that died (their pid is no longer running). */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(TEMP_MARK)) continue;
    const pid = Number(name.slice(TEMP_MARK.length).split('-')[0]);
    if (pid === process.pid || isAlive(pid)) continue;
    await fsp.rm(path.join(dir, name), { force: true, recursive: true });
    removed.push(name);
  }
  return removed;
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
