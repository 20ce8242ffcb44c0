// The parser half of the hostile corpus (test/hostile/parse.jsonl): look-alikes, NUL/CR/LF, config
// and DN injection, shell metacharacters, path traversal, overlong values, bad SANs, days, dates,
// key types, serials and rosters, each given to the parser its command uses. The cases that need
// the CLI process itself stay in test/hostile/cli.jsonl (test/hostile.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { corpus, expandDeep } from '../../hostile/corpus.ts';
import { assertRefused } from './refusal.ts';
import { meshDomain, parseIdentity, parseIdentityOf } from '../../../lib/core/identity.ts';
import { parseSan } from '../../../lib/core/san.ts';
import { keyType } from '../../../lib/core/keys.ts';
import { parseDuration } from '../../../lib/core/duration.ts';
import { serialArg } from '../../../lib/ops/revoke.ts';
import { parseRoster } from '../../../lib/ops/roster.ts';
import { openCa } from '../../../lib/ca/handle.ts';
import { validityFrom } from '../../../scripts/cli/issue.ts';

type ParseCase = { name: string; parse: string; input: string; err: string };

const mesh = meshDomain('mesh');
// parseRoster reads only the handle's domain: nothing exists at this path, and nothing is created.
const noCa = openCa('/nonexistent/rivet-ca', mesh);
const PARSERS: Record<string, (input: string) => unknown> = {
  node: (v) => parseIdentityOf('node', v, mesh),
  agent: (v) => parseIdentityOf('agent', v, mesh),
  user: (v) => parseIdentityOf('user', v, mesh),
  identity: (v) => parseIdentity(v, mesh),
  san: (v) => parseSan(v),
  days: (v) => validityFrom({ days: v }),
  'not-before': (v) => validityFrom({ notBefore: v }),
  'key-type': (v) => keyType(v),
  serial: (v) => serialArg(v),
  ttl: (v) => parseDuration(v, '--ttl'),
  roster: (v) => parseRoster(v, noCa),
};

const cases = corpus<ParseCase>('parse.jsonl');
let ran = 0;
cases.forEach((raw, i) => {
  test(`refuses ${raw.name}`, async () => {
    const c = expandDeep(raw, `hc${i}`);
    const parser = PARSERS[c.parse];
    assert.ok(parser, `parse.jsonl: unknown parser "${c.parse}"`);
    await assertRefused(c.name, () => parser!(c.input), new RegExp(c.err, 'u'));
    ran++;
  });
});

test('every parser case ran', () => {
  assert.ok(cases.length >= 35, `parse.jsonl has ${cases.length} cases`);
  assert.is(ran, cases.length);
});

test.run();
