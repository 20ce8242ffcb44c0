// Keys are 0600 from the moment they exist, whatever the umask; writes are atomic. (The CLI under
// umask 000 is test/key-modes.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { writeAtomic, KEY_MODE, PUBLIC_MODE, removeStaleTemps, TEMP_MARK } from '../../../lib/sys/files.ts';
import { tempDir } from '../../helpers/temp.ts';

test('writeAtomic sets exact modes even with umask 000', async () => {
  const dir = await tempDir();
  const old = process.umask(0);
  try {
    await writeAtomic(path.join(dir, 'k.key'), 'secret', KEY_MODE);
    await writeAtomic(path.join(dir, 'c.crt'), 'cert', PUBLIC_MODE);
  } finally {
    process.umask(old);
  }
  assert.is(fs.statSync(path.join(dir, 'k.key')).mode & 0o777, 0o600);
  assert.is(fs.statSync(path.join(dir, 'c.crt')).mode & 0o777, 0o644);
  assert.equal(fs.readdirSync(dir).sort(), ['c.crt', 'k.key']);
});

test('removeStaleTemps removes temp files of dead processes only', async () => {
  const dir = await tempDir();
  const dead = path.join(dir, `${TEMP_MARK}999999-abcd-x.key`);
  const mine = path.join(dir, `${TEMP_MARK}${process.pid}-abcd-y.key`);
  fs.writeFileSync(dead, '');
  fs.writeFileSync(mine, '');
  assert.equal(await removeStaleTemps(dir), [path.basename(dead)]);
  assert.ok(fs.existsSync(mine));
});

test.run();
