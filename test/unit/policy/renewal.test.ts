// lib/policy/renewal.ts and rate-limit.ts: when a certificate may renew, what a renewal reuses or
// supersedes, and the sliding-window limits keyed by identity and source address.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inRenewalWindow, planRenewal, renewalOpensAt, type Held } from '../../../lib/policy/renewal.ts';
import { RequestLimiter, sourceKey } from '../../../lib/policy/rate-limit.ts';
import { DAY_MS } from '../../../lib/core/duration.ts';
import type { DbEntry } from '../../../lib/ca/database.ts';
import { serialOf } from '../../../lib/x509/serial.ts';

const now = new Date('2026-06-01T00:00:00Z');
const held = (serial: string, ageDays: number, key: string, dns = ['ct1.mesh']): Held => {
  const notBefore = new Date(now.getTime() - ageDays * DAY_MS);
  const notAfter = new Date(notBefore.getTime() + 90 * DAY_MS);
  const row: DbEntry = { status: 'V', notAfter, serial: serialOf(serial), cn: 'ct1.mesh', line: '' };
  return { dir: '/x', row, key: Buffer.from(key), validity: { notBefore, notAfter }, names: { dns, ips: [] } };
};

test("the window opens with the last third of a certificate's life", () => {
  const v = held('01', 0, 'k').validity!;
  assert.equal(renewalOpensAt(v), new Date(v.notBefore.getTime() + 60 * DAY_MS));
  assert.not.ok(inRenewalWindow(v, new Date(v.notBefore.getTime() + 59 * DAY_MS)));
  assert.ok(inRenewalWindow(v, new Date(v.notBefore.getTime() + 60 * DAY_MS)));
});

test('a renewal reuses a newer, not-due certificate of the same key and names; else it supersedes all but the one kept', () => {
  const presented = held('01', 70, 'k');
  const newer = held('02', 1, 'k');
  assert.is(
    planRenewal(
      [presented, newer],
      Buffer.from('k'),
      '01',
      presented.validity!.notBefore,
      { dns: ['ct1.mesh'], ips: [] },
      now,
    ).reuse,
    newer,
  );
  const renamed = planRenewal(
    [presented, newer],
    Buffer.from('k'),
    '01',
    presented.validity!.notBefore,
    { dns: ['ct1.mesh', 'api.ct1.mesh'], ips: [] },
    now,
  );
  assert.is(renamed.reuse, undefined);
  assert.equal(
    renamed.supersede.map((h) => h.row.serial),
    ['02'],
  );
  const otherKey = planRenewal(
    [presented, held('03', 1, 'other')],
    Buffer.from('k'),
    '01',
    presented.validity!.notBefore,
    undefined,
    now,
  );
  assert.equal(
    otherKey.supersede.map((h) => h.row.serial),
    ['03'],
  );
  const older = planRenewal(
    [presented, held('04', 80, 'k')],
    Buffer.from('k'),
    '01',
    presented.validity!.notBefore,
    undefined,
    now,
  );
  assert.is(older.reuse, undefined, 'an older or due certificate is never handed out again');
});

test('limits: a refused request counts against nothing; IPv6 keyed by /64, mapped IPv4 as IPv4', () => {
  const l = new RequestLimiter({ max: 2, windowMs: 1000 });
  assert.is(l.wait('a', 0), 0);
  l.record('a', 0);
  assert.is(l.wait('a', 10), 0);
  l.record('a', 10);
  assert.is(l.wait('a', 20), 980);
  assert.is(l.wait('a', 1000), 0, 'the first request left the window');
  assert.is(sourceKey('2001:db8:1:2:aaaa::1'), sourceKey('2001:db8:1:2:bbbb::9'));
  assert.is.not(sourceKey('2001:db8:1:2::1'), sourceKey('2001:db8:1:3::1'));
  assert.is(sourceKey('::ffff:10.1.2.3'), '10.1.2.3');
});

test.run();
