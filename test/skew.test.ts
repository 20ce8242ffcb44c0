// Clock skew is named, and absorbed where it can be (issue 15): a node whose clock is 10 minutes
// behind the datahub is told so before the bootstrap secret is spent, naming both clocks; a peer 4
// minutes slow accepts a peer that renewed a moment ago (leaves are back-dated 5 minutes).
// faketime (libfaketime) moves only the clock of the process it starts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ROOT } from './helpers/ca.ts';
import { startServed, PROVISION, SECRET, type Served } from './helpers/provision.ts';
import { makeKit, startMeshServer } from './helpers/pki-kit.ts';

let s: Served;
test.before(async () => {
  s = await startServed();
});
test.after(async () => {
  await s.close();
});

test('a node 10 minutes behind is refused before the secret is sent, the message naming both clocks', async () => {
  const dir = path.join(s.home, 'ct160');
  const r = await execa(
    'faketime',
    ['-f', '-10m', PROVISION, 'enroll', '--node-id', 'ct160', ...s.datahubArgs, '--ca-fingerprint', s.fingerprint],
    {
      reject: false,
      cwd: os.tmpdir(),
      extendEnv: false,
      env: {
        PATH: process.env.PATH!,
        RIVET_NODE_DIR: dir,
        RIVET_ENV_FILE: '/dev/null',
        RIVET_BOOTSTRAP_SECRET: SECRET,
      },
    },
  );
  assert.is(r.exitCode, 2, `${r.stdout}${r.stderr}`);
  assert.match(
    String(r.stderr),
    /not enrolling: this host's clock is (9|10|11) min behind ct110\.mesh's \(here \d{4}-\d\d-\d\dT[\d:.]+Z, there \d{4}-\d\d-\d\dT[\d:.]+Z\) — fix the clock \(NTP\) of whichever is wrong; certificates and CRLs from there would be not yet valid here \(nothing was sent\)/,
    String(r.stderr),
  );
  assert.not.ok(fs.existsSync(path.join(dir, 'node.crt')), 'no half enrollment');
  const rows = fs.readFileSync(path.join(s.ca.store.intermediateDir, 'index.txt'), 'utf8');
  assert.not.match(rows, /CN=ct160\.mesh/, 'the CA signed nothing');
});

test('a peer 4 minutes slow, as client, accepts a server that renewed a moment ago', async () => {
  const kit = await makeKit(['ct161', 'ct162']);
  const renewed = await kit.cli(['renew', 'ct162', '--within', '100d']);
  assert.is(renewed.exitCode, 0, renewed.stderr);
  const server = await startMeshServer(await kit.nodeDir('ct162'));
  try {
    const slow = await execa(
      'faketime',
      [
        '-f',
        '-4m',
        process.execPath,
        '--import',
        'tsx',
        'test/helpers/mesh-probe.mts',
        await kit.nodeDir('ct161'),
        '-',
        `https://127.0.0.1:${server.port}/whoami`,
        'ct162.mesh',
      ],
      { cwd: ROOT, reject: false },
    );
    assert.match(String(slow.stdout), /^HTTP 200 .*"cn":"ct161\.mesh"/, `${slow.stdout}${slow.stderr}`);
  } finally {
    await server.close();
  }
});

test.run();
