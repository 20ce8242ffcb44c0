import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { withLock } from '../../../lib/sys/lock.ts';
import { tempDir } from '../../helpers/temp.ts';

test('serialises concurrent holders in one process and is re-entrant along a call chain', async () => {
  const file = path.join(await tempDir(), '.lock');
  let inside = 0;
  let max = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      withLock(file, `t${i}`, async () => {
        inside++;
        max = Math.max(max, inside);
        await withLock(file, 'nested', async () => {
          await sleep(2);
        });
        order.push(i);
        inside--;
      }),
    ),
  );
  assert.is(max, 1);
  assert.is(order.length, 10);
  assert.not.ok(fs.existsSync(file));
});

test('breaks a lock left by a dead process', async () => {
  const file = path.join(await tempDir(), '.lock');
  fs.writeFileSync(
    file,
    JSON.stringify({ pid: 999999, host: os.hostname(), what: 'issue', since: 'then', nonce: 'x' }),
  );
  const r = await withLock(file, 'me', async () => 'got it', { timeoutMs: 2000 });
  assert.is(r, 'got it');
});

test('waits for a live holder, then names it when the wait runs out', async () => {
  const file = path.join(await tempDir(), '.lock');
  fs.writeFileSync(
    file,
    JSON.stringify({
      pid: process.ppid,
      host: os.hostname(),
      what: 'revoke opus@ct111',
      since: '2026-01-01T00:00:00Z',
      nonce: 'y',
    }),
  );
  try {
    await withLock(file, 'me', async () => 'no', { timeoutMs: 300 });
    assert.unreachable('took a held lock');
  } catch (err) {
    assert.match(
      (err as Error).message,
      new RegExp(
        `CA is locked by pid ${process.ppid} .*\\(revoke opus@ct111, since 2026-01-01T00:00:00Z\\).*remove .*\\.lock if that process is gone`,
      ),
    );
  }
  assert.ok(fs.existsSync(file), 'a live holder’s lock is left alone');
});

test('breaks a lock whose pid now belongs to another process (pid reuse)', async () => {
  const file = path.join(await tempDir(), '.lock');
  fs.writeFileSync(
    file,
    JSON.stringify({ pid: process.ppid, host: os.hostname(), what: 'issue', since: 'then', nonce: 'z', start: '1' }),
  );
  assert.is(await withLock(file, 'me', async () => 'reused pid detected', { timeoutMs: 2000 }), 'reused pid detected');
});

test('breaks an empty lock file once it is older than the grace period', async () => {
  const file = path.join(await tempDir(), '.lock');
  fs.writeFileSync(file, '');
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(file, old, old);
  assert.is(await withLock(file, 'me', async () => 'took it', { timeoutMs: 2000 }), 'took it');
  assert.not.ok(fs.existsSync(file));
});

test.run();
