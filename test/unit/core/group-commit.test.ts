// lib/core/group-commit.ts: requests that arrive together are committed as one group (one openssl
// run, one database read, one audit append — lib/service/signing-queue.ts), one group at a time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GroupCommit } from '../../../lib/core/group-commit.ts';

test('GroupCommit: one group at a time by default, bursts gathered, drain waits, parallel allows two', async () => {
  let running = 0,
    most = 0;
  const sizes: number[] = [];
  const g = new GroupCommit<number, number>(
    async (group) => {
      running++;
      most = Math.max(most, running);
      sizes.push(group.length);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return group.map((x) => x * 2);
    },
    { gather: { quietMs: 5, maxMs: 50 } },
  );
  const first = [1, 2, 3].map((x) => g.submit(x));
  await new Promise((r) => setTimeout(r, 2));
  const late = [4, 5].map((x) => g.submit(x)); // 2 ms later: gathered into the same group
  assert.equal(await Promise.all([...first, ...late]), [2, 4, 6, 8, 10]);
  assert.equal(sizes, [5]);
  const more = Array.from({ length: 6 }, (_, i) => g.submit(i));
  await g.drain();
  assert.is(running, 0);
  assert.is(most, 1);
  assert.equal((await Promise.all(more)).length, 6);

  let inFlight = 0,
    peak = 0;
  const two = new GroupCommit<number, number>(
    async (group) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      return group;
    },
    { maxGroup: 2, parallel: 2 },
  );
  await Promise.all(Array.from({ length: 8 }, (_, i) => two.submit(i)));
  await two.drain();
  assert.is(peak, 2);
  const failing = new GroupCommit<number, number>(async () => {
    throw new Error('commit failed');
  });
  const err = await failing.submit(1).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(String(err?.message), /commit failed/);
});

test.run();
