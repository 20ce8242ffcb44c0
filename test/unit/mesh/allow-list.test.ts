// lib/mesh/authz.ts (issue 13), allow-lists: `prefix.*` matches at a dot boundary only, `*` alone matches everything,
// anything else is exact; a `*` anywhere else is refused at load (it would read as a prefix rule
// and is not one); a deleted or unreadable allow-list file denies everything and says so.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { authorize, allowListFrom, loadAllowList, MeshAuthError, type PeerIdentity } from '../../../lib/index.ts';

const opus = { kind: 'agent', cn: 'opus@ct111', nodeId: 'ct111', agentId: 'opus' } as unknown as PeerIdentity;
const allowed = (list: ReturnType<typeof allowListFrom>, action: string) => {
  try {
    authorize(opus, action, list);
    return true;
  } catch (err) {
    assert.ok(err instanceof MeshAuthError && err.status === 403, String(err));
    return false;
  }
};
const until = async (cond: () => boolean) => {
  for (let i = 0; i < 150 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
};

test('"prefix.*" matches under the prefix at a dot boundary, never a longer name nor the prefix itself', () => {
  const list = allowListFrom({ 'opus@ct111': ['tools.*'] }, 'mesh');
  assert.ok(allowed(list, 'tools.call'));
  assert.ok(allowed(list, 'tools.call.admin'));
  assert.not.ok(allowed(list, 'toolsAdmin.call'));
  assert.not.ok(allowed(list, 'tools'));
  assert.not.ok(allowed(list, 'toolsx'));
});

test('an exact action matches only itself: tools.call does not allow tools.callAdmin', () => {
  const list = allowListFrom({ 'opus@ct111': ['tools.call'] }, 'mesh');
  assert.ok(allowed(list, 'tools.call'));
  assert.not.ok(allowed(list, 'tools.callAdmin'));
  assert.not.ok(allowed(list, 'tools.call.x'));
  assert.not.ok(allowed(list, 'tools.cal'));
});

test('"*" alone allows everything; no rules for a CN allows nothing', () => {
  const list = allowListFrom({ 'opus@ct111': ['*'] }, 'mesh');
  assert.ok(allowed(list, 'tools.callAdmin'));
  assert.ok(allowed(list, 'anything'));
  assert.throws(
    () => authorize({ ...opus, cn: 'grok@ct111' } as PeerIdentity, 'tools.call', list),
    /"grok@ct111" may not "tools.call"/,
  );
});

test('"tools.call*" and other stars that are not a whole last segment are refused at load, with the fix', () => {
  assert.throws(
    () => allowListFrom({ 'opus@ct111': ['tools.call*'] }, 'mesh'),
    (e: Error) =>
      /pattern "tools.call\*".*write "tools.call" for that one action, or "tools.\*" for everything under a prefix/.test(
        e.message,
      ) && (e as { code?: string }).code === 'bad_allow_list',
  );
  for (const p of ['*.call', 'to*ls.call', 'tools.*.read', '.*', '**', 'tools.**']) {
    assert.throws(
      () => allowListFrom({ 'opus@ct111': [p] }, 'mesh'),
      /"\*" is allowed only alone or as a whole last segment/,
      p,
    );
  }
});

test('a deleted allow-list denies everything (onError says so) until it is back; broken JSON keeps the last good list', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rivet-allow-'));
  const file = path.join(dir, 'allow-list.json');
  fs.writeFileSync(file, JSON.stringify({ 'opus@ct111': ['memory.*'] }));
  const errors: Error[] = [];
  let reloads = 0;
  const list = loadAllowList(file, { domain: 'mesh', onError: (e) => errors.push(e), onReload: () => reloads++ });
  try {
    assert.ok(allowed(list, 'memory.read'));
    fs.unlinkSync(file);
    await until(() => errors.length > 0);
    assert.match(
      errors[0]?.message ?? '',
      /cannot read allow-list ".*allow-list.json" \(ENOENT\).*every call is denied/,
    );
    assert.not.ok(allowed(list, 'memory.read'), 'the deleted list still grants');
    await new Promise((r) => setTimeout(r, 400));
    assert.is(errors.length, 1, 'reported once, not on every poll');

    fs.writeFileSync(`${file}.tmp`, JSON.stringify({ 'opus@ct111': ['memory.write'] }));
    fs.renameSync(`${file}.tmp`, file);
    await until(() => reloads > 0);
    assert.ok(allowed(list, 'memory.write'));
    assert.not.ok(allowed(list, 'memory.read'));

    fs.writeFileSync(file, '{ "opus@ct111": [ "tools.call*" ] }'); // valid JSON, refused pattern
    await until(() => errors.length > 1);
    assert.match(errors[1]!.message, /pattern "tools.call\*"/);
    assert.ok(allowed(list, 'memory.write'), 'a refused edit keeps the last good list');
  } finally {
    list.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreadable allow-list denies everything (a directory in its place: root ignores file modes)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rivet-allow-'));
  const file = path.join(dir, 'allow-list.json');
  fs.writeFileSync(file, JSON.stringify({ 'opus@ct111': ['*'] }));
  const errors: Error[] = [];
  const list = loadAllowList(file, { domain: 'mesh', onError: (e) => errors.push(e) });
  try {
    assert.ok(allowed(list, 'tools.call'));
    fs.unlinkSync(file);
    fs.mkdirSync(file); // readFileSync now fails with EISDIR, whoever we run as
    await until(() => errors.length > 0);
    assert.match(errors[0]?.message ?? '', /cannot read allow-list .*\(EISDIR\)/);
    assert.not.ok(allowed(list, 'tools.call'));
  } finally {
    list.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
