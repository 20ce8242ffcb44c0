// lib/sys/config.ts: flags > environment > .env file > defaults, and the bootstrap secret's forms.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, bootstrapSecret, DEFAULTS } from '../../../lib/sys/config.ts';
import { tempDir } from '../../helpers/temp.ts';

test('flags win over the environment, the environment over the .env file, the file over defaults', async () => {
  const dir = await tempDir();
  const envFile = path.join(dir, 'rivet.env');
  fs.writeFileSync(envFile, 'RIVET_CA_DIR=/from/file\nRIVET_MESH_DOMAIN=filemesh\nRIVET_NODE_DIR=/node/from/file\n');
  const env = { RIVET_ENV_FILE: envFile, RIVET_MESH_DOMAIN: 'envmesh' };
  const c = loadConfig({ caDir: '/from/flag' }, env);
  assert.is(c.caDir, '/from/flag');
  assert.is(c.domain, 'envmesh');
  assert.is(c.nodeDir, '/node/from/file');
  assert.is(c.crlPushUrl, DEFAULTS.crlPushUrl);
  assert.is(
    loadConfig({}, { RIVET_ENV_FILE: '/dev/null', RIVET_CA_DIR: '' }).caDir,
    DEFAULTS.caDir,
    'an empty variable counts as unset',
  );
});

test('a RIVET_ENV_FILE that does not exist, a bad domain or CIDR list is refused naming it', () => {
  assert.throws(
    () => loadConfig({}, { RIVET_ENV_FILE: '/nonexistent/rivet.env' }),
    /RIVET_ENV_FILE "\/nonexistent\/rivet\.env" does not exist — fix the path or unset it/,
  );
  assert.throws(
    () => loadConfig({ domain: 'Mesh' }, { RIVET_ENV_FILE: '/dev/null' }),
    /domain "Mesh" must be lower case/,
  );
  assert.throws(() => loadConfig({}, { RIVET_ENV_FILE: '/dev/null', RIVET_SAN_CIDRS: '10.0.0.0/33' }), /is not a CIDR/);
});

test('the bootstrap secret: the variable, its _FILE form (one newline dropped), or MESH_SECRET with a warning', async () => {
  const file = path.join(await tempDir(), 'secret');
  fs.writeFileSync(file, 'from a file\n');
  assert.is(bootstrapSecret({ RIVET_BOOTSTRAP_SECRET: 's1', RIVET_BOOTSTRAP_SECRET_FILE: file }), 's1');
  assert.is(bootstrapSecret({ RIVET_BOOTSTRAP_SECRET_FILE: file }), 'from a file');
  const warnings: string[] = [];
  assert.is(
    bootstrapSecret({ MESH_SECRET: 'old' }, (w) => warnings.push(w)),
    'old',
  );
  assert.match(warnings.join(), /MESH_SECRET is deprecated — rename it to RIVET_BOOTSTRAP_SECRET/);
  assert.is(bootstrapSecret({}), undefined);
  fs.writeFileSync(file, '\n');
  assert.throws(
    () => bootstrapSecret({ RIVET_BOOTSTRAP_SECRET_FILE: file }),
    /RIVET_BOOTSTRAP_SECRET_FILE ".*secret" is empty/,
  );
  assert.throws(
    () => bootstrapSecret({ RIVET_BOOTSTRAP_SECRET_FILE: '/nonexistent/s' }),
    /cannot be read — check the path/,
  );
});

test.run();
