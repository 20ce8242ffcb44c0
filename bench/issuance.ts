// Sections 1 and 2: one certificate from the command line, then a roster of many, each beside
// easy-rsa (EC P-256, nopass, batch mode) and the raw openssl floor (genpkey + req + x509 -req).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { CLI, EASYRSA, OSSL_ENV, baseEnv, fresh, log, median, must, pool, timed } from './common.ts';

export type Setup = { caDir: string; easyEnv: NodeJS.ProcessEnv; floorDir: string };

export function setup(work: string): Setup {
  const caDir = path.join(fresh(path.join(work, 'issuance')), 'ca');
  must(CLI, ['init'], { env: baseEnv(caDir) });
  must(CLI, ['issue-intermediate'], { env: baseEnv(caDir) });
  const pki = path.join(work, 'easyrsa', 'pki');
  fresh(path.dirname(pki));
  const easyEnv = {
    ...process.env,
    EASYRSA_BATCH: '1',
    EASYRSA_PKI: pki,
    EASYRSA_ALGO: 'ec',
    EASYRSA_CURVE: 'prime256v1',
    EASYRSA_CERT_EXPIRE: '90',
  };
  must(EASYRSA, ['init-pki'], { env: easyEnv, cwd: path.dirname(pki) });
  // EASYRSA_REQ_CN only for the CA: build-client-full refuses it ("external commonName").
  must(EASYRSA, ['build-ca', 'nopass'], { env: { ...easyEnv, EASYRSA_REQ_CN: 'Bench CA' }, cwd: path.dirname(pki) });
  return { caDir, easyEnv, floorDir: fresh(path.join(work, 'floor')) };
}

/** The least any tool can do with the openssl binary: three processes, no database, no checks. */
function floorArgs(s: Setup, name: string): string[][] {
  const p = (ext: string) => path.join(s.floorDir, `${name}.${ext}`);
  const int = path.join(s.caDir, 'intermediate');
  return [
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('key')],
    ['req', '-new', '-key', p('key'), '-subj', `/CN=${name}`, '-out', p('csr')],
    [
      'x509',
      '-req',
      '-in',
      p('csr'),
      '-CA',
      path.join(int, 'int.crt'),
      '-CAkey',
      path.join(int, 'int.key'),
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      '90',
      '-out',
      p('crt'),
    ],
  ];
}

function floorOnce(s: Setup, name: string): number {
  return floorArgs(s, name).reduce(
    (ms, args) => ms + timed('openssl', args, { env: { ...process.env, ...OSSL_ENV } }),
    0,
  );
}

export type Single = { rivet: number; easyrsa: number; floor: number; nodeStart: number; runs: number };

export function single(s: Setup, runs: number): Single {
  const r: number[] = [],
    e: number[] = [],
    f: number[] = [],
    n: number[] = [];
  // Interleaved, so that load from other processes hits all three alike.
  for (let i = 0; i < runs; i++) {
    r.push(timed(CLI, ['issue-agent', `single${i}@ct1`], { env: baseEnv(s.caDir) }));
    e.push(
      timed(EASYRSA, ['build-client-full', `single${i}`, 'nopass'], {
        env: s.easyEnv,
        cwd: path.dirname(s.easyEnv.EASYRSA_PKI!),
      }),
    );
    f.push(floorOnce(s, `single${i}`));
    // What any Node CLI pays before its first line of code: the floor under a Node tool's time.
    n.push(timed(process.execPath, ['-e', '0']));
  }
  return { rivet: median(r), easyrsa: median(e), floor: median(f), nodeStart: median(n), runs };
}

export type Roster = { n: number; rivetMs: number; easyrsaMs: number; floorMs: number };

export async function roster(s: Setup, n: number): Promise<Roster> {
  const file = path.join(s.floorDir, 'roster.txt');
  fs.writeFileSync(file, Array.from({ length: n }, (_, i) => `r${i}@ct2`).join('\n') + '\n');
  const rivetMs = timed(CLI, ['issue', '--roster', file], { env: baseEnv(s.caDir) });
  log(`roster: rivet-ca ${n} in ${Math.round(rivetMs)} ms; easy-rsa loop next (slow)`);
  let easyrsaMs = 0;
  for (let i = 0; i < n; i++)
    easyrsaMs += timed(EASYRSA, ['build-client-full', `r${i}`, 'nopass'], {
      env: s.easyEnv,
      cwd: path.dirname(s.easyEnv.EASYRSA_PKI!),
    });
  // The floor gets every core: the three openssl steps per identity, identities in parallel.
  const t = performance.now();
  await pool(
    os.availableParallelism(),
    Array.from({ length: n }, (_, i) => `rf${i}`),
    async (name) => {
      for (const args of floorArgs(s, name)) await execa('openssl', args, { env: OSSL_ENV });
    },
  );
  return { n, rivetMs, easyrsaMs, floorMs: performance.now() - t };
}
