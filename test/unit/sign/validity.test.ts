// lib/sign/validity.ts: a leaf lives 90 days from five minutes ago unless told otherwise, and never
// before or past its intermediate.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { leafValidity, withinIssuer } from '../../../lib/sign/validity.ts';
import { buildCert, newKey } from '../x509/build.ts';

test('90 days from five minutes ago by default, whole seconds; --days and --not-before as given', () => {
  const now = new Date('2026-03-01T12:00:00.750Z');
  const v = leafValidity({}, now);
  assert.is(v.notBefore.toISOString(), '2026-03-01T11:55:00.000Z'); // back-dated 5 minutes (DESIGN §3, issue 15)
  assert.is(v.notAfter.toISOString(), '2026-05-30T11:55:00.000Z');
  const given = leafValidity({ days: 1, notBefore: new Date('2026-01-01T00:00:00Z') });
  assert.equal(
    [given.notBefore.toISOString(), given.notAfter.toISOString()],
    ['2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z'],
  );
  assert.throws(() => leafValidity({ days: 826 }), /--days 826 must be a whole number from 1 to 825/);
  assert.throws(() => leafValidity({ notBefore: new Date('nope') }), /--not-before must be an ISO 8601 time/);
});

test('a leaf that would outlive its intermediate is refused, naming both ends and the fix', () => {
  const k = newKey().privateKey;
  const intermediate = new X509Certificate(
    buildCert(k, k, { ca: true, days: 30, notBefore: new Date('2026-01-01T00:00:00Z') }),
  );
  withinIssuer(intermediate, leafValidity({ days: 30, notBefore: new Date('2026-01-01T00:00:00Z') }));
  assert.throws(
    () => withinIssuer(intermediate, leafValidity({ days: 31, notBefore: new Date('2026-01-01T00:00:00Z') })),
    /a certificate until 2026-02-01T00:00:00\.000Z would outlive the intermediate \(until 2026-01-31T00:00:00\.000Z\) — run `rivet-ca rotate-intermediate`/,
  );
});

test("a leaf never starts before its intermediate: the back-dating stops at the issuer's start", () => {
  const k = newKey().privateKey;
  const intermediate = new X509Certificate(
    buildCert(k, k, { ca: true, days: 365, notBefore: new Date('2026-01-01T00:00:00Z') }),
  );
  const v = withinIssuer(intermediate, leafValidity({}, new Date('2026-01-01T00:01:00Z')));
  assert.is(v.notBefore.toISOString(), '2026-01-01T00:00:00.000Z');
  const later = withinIssuer(intermediate, leafValidity({}, new Date('2026-01-02T00:00:00Z')));
  assert.is(later.notBefore.toISOString(), '2026-01-01T23:55:00.000Z');
});

test.run();
