// One exclusive lock around every change to CA state (DESIGN §8). `openssl ca` does not lock its
// database: two concurrent runs lose rows (the mesh's earlier script lost 7 of 20). The lock is a
// file created with O_EXCL holding the owner's pid; a lock whose owner died is broken safely.
import fsp from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AsyncLocalStorage } from 'node:async_hooks';
import { RivetError } from '../core/errors.ts';
import { isAlive, tempPathFor } from './files.ts';

type Holder = { pid: number; host: string; what: string; since: string; nonce: string; start?: string };

/** The kernel's start time of a process: with the pid, it names one process even after pid reuse. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function holderAlive(h: Holder): boolean {
  if (!isAlive(h.pid)) return false;
  const start = processStart(h.pid);
  return h.start === undefined || start === undefined || start === h.start;
}

// Re-entrancy follows the async call chain (a renew that issues inside the same change), while
// independent tasks of one process (the service, a roster run) queue on an in-process mutex first.
const heldHere = new AsyncLocalStorage<ReadonlySet<string>>();
const queues = new Map<string, Promise<unknown>>();

export type LockOptions = { timeoutMs?: number; onWait?: (holder: string) => void };

function describe(h: Holder): string {
  return `pid ${h.pid} on ${h.host} (${h.what}, since ${h.since})`;
}

async function readHolder(file: string): Promise<Holder | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock by hard-linking a fully written holder file to the lock name: link() is atomic and
 * fails if the name exists, so a lock file is never seen empty or half-written, even by a process
 * killed mid-way (a plain O_EXCL create-then-write would leave an empty lock no one could break).
 */
async function tryCreate(file: string, me: Holder): Promise<boolean> {
  const tmp = tempPathFor(file);
  await fsp.writeFile(tmp, JSON.stringify(me), { flag: 'wx', mode: 0o644 });
  try {
    await fsp.link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

/**
 * Breaks a lock whose holder is gone. Renaming is atomic, so of several waiters that saw the same
 * dead holder only one moves the file; if what it moved turns out to be a live lock taken in the
 * meantime, it is put back.
 */
async function breakIfStale(file: string, seen: Holder): Promise<void> {
  if (seen.host !== os.hostname() || holderAlive(seen)) return;
  // A temp-file name: if we are killed while it exists, the next lock holder's recovery removes it.
  const aside = tempPathFor(file);
  try {
    await fsp.rename(file, aside);
  } catch {
    return;
  }
  const moved = await readHolder(aside);
  if (moved && moved.nonce !== seen.nonce) {
    try {
      await fsp.link(aside, file);
    } catch {
      /* a newer lock exists: theirs wins */
    }
  }
  await fsp.rm(aside, { force: true });
}

/** A lock file nobody can read (written by an older version, or damaged) is broken after a grace period. */
async function breakIfUnreadable(file: string): Promise<void> {
  const st = await fsp.stat(file).catch(() => undefined);
  if (!st || Date.now() - st.mtimeMs < 10_000) return;
  const aside = tempPathFor(file);
  try {
    await fsp.rename(file, aside);
  } catch {
    return;
  }
  if (await readHolder(aside)) {
    try {
      await fsp.link(aside, file);
    } catch {
      /* a newer lock exists: theirs wins */
    }
  }
  await fsp.rm(aside, { force: true });
}

/** Runs `fn` holding the lock at `file`. Re-entrant along one async call chain. */
export async function withLock<T>(
  file: string,
  what: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const mine = heldHere.getStore();
  if (mine?.has(file)) return fn();
  const previous = queues.get(file) ?? Promise.resolve();
  let release!: () => void;
  const turn = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = previous.then(() => turn);
  queues.set(file, tail);
  await previous;
  try {
    return await withFileLock(file, what, () => heldHere.run(new Set([...(mine ?? []), file]), fn), opts);
  } finally {
    release();
    if (queues.get(file) === tail) queues.delete(file);
  }
}

async function withFileLock<T>(file: string, what: string, fn: () => Promise<T>, opts: LockOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? Number(process.env.RIVET_LOCK_TIMEOUT_MS ?? 120_000);
  const me: Holder = {
    pid: process.pid,
    host: os.hostname(),
    what,
    since: new Date().toISOString(),
    nonce: randomBytes(8).toString('hex'),
    start: processStart(process.pid),
  };
  const start = Date.now();
  let told = false;
  let delay = 5;
  while (!(await tryCreate(file, me))) {
    const holder = await readHolder(file);
    if (holder) await breakIfStale(file, holder);
    else await breakIfUnreadable(file);
    const waited = Date.now() - start;
    if (waited > timeoutMs) {
      throw new RivetError(
        `CA is locked by ${holder ? describe(holder) : 'another process'} — waited ${Math.round(waited / 1000)}s; retry later, or remove ${file} if that process is gone`,
        'locked',
      );
    }
    if (!told && waited > 2000 && holder) {
      told = true;
      opts.onWait?.(describe(holder));
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 50);
  }
  try {
    return await fn();
  } finally {
    const current = await readHolder(file);
    if (current?.nonce === me.nonce) await fsp.rm(file, { force: true });
  }
}
