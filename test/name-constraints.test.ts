// The intermediate's name constraints, judged by verifiers we did not write. A thief of
// intermediate/int.key signs certificates with plain `openssl x509 -req` (outside rivet-ca) for
// DNS:www.example.com, IP:8.8.8.8 and URI:spiffe://evil.example/x. Against a CA made with
// --no-name-constraints every verifier accepts them (the attack); against the default CA every
// verifier refuses them, while every certificate rivet-ca issues still passes:
//
//   openssl verify -x509_strict -crl_check_all   OpenSSL's verifier (hence Node, nginx, curl)
//   a Node tls server built from lib/            loadMeshTls + meshServerOptions, as a mesh server
//   GnuTLS certtool --verify                     with the CRL bundle
//   Go crypto/x509 Certificate.Verify            a standard-library-only program built here
//
// Two known disagreements are pinned, so a change in a verifier shows up here: GnuTLS ignores
// permitted URI subtrees (it refused the URI certificate above only through its CN), and Python
// cryptography refuses every chain whose CA constrains URIs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import type tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { execa } from 'execa';
import { cli, tempDir, ROOT, type CliResult } from './helpers/ca.ts';
import { loadMeshTls, meshServerOptions } from '../lib/index.ts';

type Verdict = { ok: boolean; why: string };
type Leaf = { name: string; cert: string; key: string };

let home: string;
let goverify: string;
const stops: Array<() => Promise<void>> = [];
const NOCONF = { OPENSSL_CONF: '/dev/null' };

function must(r: CliResult, what: string): void {
  if (r.exitCode !== 0) throw new Error(`${what} failed (${r.exitCode}): ${r.stderr}${r.stdout}`);
}

const GO = String.raw`package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

func load(path string) []*x509.Certificate {
	data, err := os.ReadFile(path)
	if err != nil { panic(err) }
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil { return out }
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil { panic(err) }
		out = append(out, c)
	}
}

// goverify ROOT CHAIN...: one line per chain file (leaf first, then its intermediates).
func main() {
	roots := x509.NewCertPool()
	for _, c := range load(os.Args[1]) { roots.AddCert(c) }
	for _, file := range os.Args[2:] {
		chain := load(file)
		inter := x509.NewCertPool()
		for _, c := range chain[1:] { inter.AddCert(c) }
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil { fmt.Println("REFUSED", err) } else { fmt.Println("OK") }
	}
}
`;

/** A CA made with the real CLI; `flags` go to issue-intermediate. Issues one node, agent and user. */
async function makeCa(name: string, flags: string[]): Promise<{ dir: string; ours: Leaf[] }> {
  const dir = path.join(home, name);
  for (const args of [
    ['init'],
    ['issue-intermediate', ...flags],
    [
      'issue-node',
      'ct111',
      '--san',
      'DNS:localhost',
      '--san',
      'DNS:ct111-api.mesh',
      '--san',
      'IP:127.0.0.1',
      '--san',
      'IP:10.1.2.3',
      '--san',
      'IP:fd00::1',
    ],
    ['issue-node', 'ct110'],
    ['issue-agent', 'opus@ct111'],
    ['issue-user', 'alice@external'],
  ])
    must(await cli(dir, args), `${name}: ${args.join(' ')}`);
  const ours = ['ct111', 'opus@ct111', 'alice@external'].map((cn) => ({
    name: `issued ${cn}`,
    cert: path.join(dir, 'issued', `${cn}.crt`),
    key: path.join(dir, 'issued', `${cn}.key`),
  }));
  return { dir, ours };
}

/** What a thief of int.key does: a key, a CSR and `openssl x509 -req` with a hand-written profile. */
async function steal(dir: string, tag: string, cn: string, san: string, eku = 'serverAuth, clientAuth'): Promise<Leaf> {
  const work = path.join(dir, 'stolen');
  await fsp.mkdir(work, { recursive: true });
  const base = path.join(work, tag);
  fs.writeFileSync(
    `${base}.ext`,
    `[x]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = ${eku}\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\nsubjectAltName = ${san}\n`,
  );
  await execa(
    'openssl',
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-noenc',
      '-keyout',
      `${base}.key`,
      '-subj',
      `/CN=${cn}`,
      '-out',
      `${base}.csr`,
    ],
    { env: NOCONF },
  );
  await execa(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      `${base}.csr`,
      '-CA',
      path.join(dir, 'intermediate', 'int.crt'),
      '-CAkey',
      path.join(dir, 'intermediate', 'int.key'),
      '-days',
      '30',
      '-extfile',
      `${base}.ext`,
      '-extensions',
      'x',
      '-out',
      `${base}.leaf`,
    ],
    { env: NOCONF },
  );
  fs.writeFileSync(
    `${base}.crt`,
    fs.readFileSync(`${base}.leaf`, 'utf8') + fs.readFileSync(path.join(dir, 'intermediate', 'int.crt'), 'utf8'),
  );
  return { name: `stolen-key ${san}`, cert: `${base}.crt`, key: `${base}.key` };
}

const stolenSet = (dir: string) =>
  Promise.all([
    steal(dir, 'dns', 'www.example.com', 'DNS:www.example.com'),
    steal(dir, 'ip', '8.8.8.8', 'IP:8.8.8.8'),
    steal(dir, 'uri', 'evil.example', 'URI:spiffe://evil.example/x'),
  ]);

async function opensslVerify(dir: string, leaf: Leaf): Promise<Verdict> {
  const r = await execa(
    'openssl',
    [
      'verify',
      '-x509_strict',
      '-crl_check_all',
      '-CRLfile',
      path.join(dir, 'crl.pem'),
      '-CAfile',
      path.join(dir, 'root', 'ca.crt'),
      '-untrusted',
      path.join(dir, 'intermediate', 'int.crt'),
      leaf.cert,
    ],
    { reject: false, env: NOCONF },
  );
  return { ok: r.exitCode === 0, why: `${r.stdout} ${r.stderr}`.replace(/\s+/g, ' ').trim() };
}

async function certtool(dir: string, leaf: Leaf): Promise<Verdict> {
  const r = await execa(
    'certtool',
    [
      '--verify',
      '--load-ca-certificate',
      path.join(dir, 'root', 'ca.crt'),
      '--load-crl',
      path.join(dir, 'crl.pem'),
      '--infile',
      leaf.cert,
    ],
    { reject: false },
  );
  const out = `${r.stdout}\n${r.stderr}`;
  return {
    ok: r.exitCode === 0 && /Verified\. The certificate is trusted/.test(out),
    why: out
      .split('\n')
      .filter((l) => /verification output/i.test(l))
      .join(' '),
  };
}

async function goVerify(dir: string, leaves: Leaf[]): Promise<Verdict[]> {
  const r = await execa(goverify, [path.join(dir, 'root', 'ca.crt'), ...leaves.map((l) => l.cert)], { reject: false });
  assert.is(r.exitCode, 0, r.stderr);
  return String(r.stdout)
    .split('\n')
    .map((line) => ({ ok: line === 'OK', why: line }));
}

/** A mesh server built only from lib/ (ct110's node dir); a leaf is accepted when its handshake is. */
async function libServer(dir: string): Promise<(leaf: Leaf) => Promise<Verdict>> {
  const node = path.join(dir, 'node-ct110');
  await fsp.mkdir(node, { recursive: true, mode: 0o700 });
  await fsp.copyFile(path.join(dir, 'issued', 'ct110.key'), path.join(node, 'node.key'));
  await fsp.copyFile(path.join(dir, 'issued', 'ct110.crt'), path.join(node, 'node.crt'));
  await fsp.copyFile(path.join(dir, 'intermediate', 'chain.pem'), path.join(node, 'rivet-ca.crt'));
  await fsp.copyFile(path.join(dir, 'crl.pem'), path.join(node, 'crl.pem'));
  let lastRefusal = '';
  const server = https.createServer(meshServerOptions(loadMeshTls({ dir: node, domain: 'mesh' })), (req, res) => {
    res.writeHead(200).end(`authorized ${(req.socket as tls.TLSSocket).authorized}`);
  });
  // A refused client certificate shows as a reset; the socket says why (its authorizationError).
  server.on('tlsClientError', (err, socket) => {
    lastRefusal = `${err.message} ${String(socket?.authorizationError ?? '')}`;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stops.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  const ca = fs.readFileSync(path.join(dir, 'intermediate', 'chain.pem'));
  return (leaf) =>
    new Promise((resolve) => {
      lastRefusal = '';
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          servername: 'ct110.mesh',
          ca,
          cert: fs.readFileSync(leaf.cert),
          key: fs.readFileSync(leaf.key),
          agent: false,
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
          });
          res.on('end', () => resolve({ ok: body === 'authorized true', why: body }));
        },
      );
      req.on('error', (err) =>
        setTimeout(() => resolve({ ok: false, why: `${err.message}; server: ${lastRefusal}` }), 50),
      );
      req.end();
    });
}

/** Every verifier's verdict on every leaf, as `verifier: leaf → verdict` lines for messages. */
async function judgeAll(dir: string, leaves: Leaf[]): Promise<Map<string, Verdict[]>> {
  const node = await libServer(dir);
  const out = new Map<string, Verdict[]>();
  out.set('openssl verify', await Promise.all(leaves.map((l) => opensslVerify(dir, l))));
  out.set('node tls (lib server)', await Promise.all(leaves.map((l) => node(l))));
  out.set('gnutls certtool', await Promise.all(leaves.map((l) => certtool(dir, l))));
  out.set('go crypto/x509', await goVerify(dir, leaves));
  return out;
}

function expectAll(
  verdicts: Map<string, Verdict[]>,
  leaves: Leaf[],
  ok: boolean,
  reason?: Record<string, RegExp>,
): void {
  const problems: string[] = [];
  for (const [verifier, list] of verdicts) {
    list.forEach((v, i) => {
      if (v.ok !== ok) problems.push(`${verifier} ${v.ok ? 'ACCEPTED' : 'refused'} ${leaves[i]!.name}: ${v.why}`);
      else if (!ok && reason?.[verifier] && !reason[verifier]!.test(v.why))
        problems.push(`${verifier} refused ${leaves[i]!.name} for another reason: ${v.why}`);
    });
  }
  assert.equal(problems, [], problems.join('\n'));
}

test.before(async () => {
  await execa('sh', [path.join(ROOT, 'test', 'setup', 'install-deps.sh')], { stdio: 'inherit' });
  home = await tempDir('rivet-nc-');
  fs.writeFileSync(path.join(home, 'goverify.go'), GO);
  goverify = path.join(home, 'goverify');
  const env = {
    GOCACHE: path.join(home, 'gocache'),
    GOPATH: path.join(home, 'gopath'),
    HOME: home,
    GOFLAGS: '',
    GO111MODULE: 'auto',
  };
  const built = await execa('go', ['build', '-o', goverify, path.join(home, 'goverify.go')], {
    reject: false,
    env,
    cwd: home,
  });
  assert.is(
    built.exitCode,
    0,
    `go build failed — is golang-go installed (test/setup/install-deps.sh)? ${built.stderr}`,
  );
});

test.after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
});

test('without name constraints the stolen-key certificates pass every verifier (the attack this closes)', async () => {
  const { dir } = await makeCa('open', ['--no-name-constraints']);
  const stolen = await stolenSet(dir);
  expectAll(await judgeAll(dir, stolen), stolen, true);
});

test('with the default intermediate every verifier refuses the three stolen-key certificates, for its name constraints', async () => {
  const { dir } = await makeCa('default', []);
  const stolen = await stolenSet(dir);
  expectAll(await judgeAll(dir, stolen), stolen, false, {
    'openssl verify': /permitted subtree violation/,
    // Node has no name for X509_V_ERR_PERMITTED_VIOLATION (47) and reports it as UNSPECIFIED; the
    // unconstrained CA above, whose same certificates Node accepts, shows the constraints are why.
    'node tls (lib server)': /UNSPECIFIED|PERMITTED/,
    'gnutls certtool': /violates the signer's constraints/,
    'go crypto/x509': /not authorized to sign for this name|not permitted by any constraint/,
  });
});

test('every certificate rivet-ca issues (node with aliases and IPs, agent, user) passes all four', async () => {
  const { dir, ours } = await makeCa('issued', []);
  expectAll(await judgeAll(dir, ours), ours, true);
});

test('pinned: GnuTLS does not enforce permitted URI subtrees; OpenSSL and Go do', async () => {
  // An agent-like client certificate: no DNS name, no serverAuth, so GnuTLS has no CN to fall back on.
  const dir = path.join(home, 'default');
  const leaf = await steal(dir, 'uri-client', 'x@ct111', 'URI:spiffe://evil.example/agent/x', 'clientAuth');
  assert.not.ok((await opensslVerify(dir, leaf)).ok, 'openssl refuses');
  assert.not.ok((await goVerify(dir, [leaf]))[0]!.ok, 'go refuses');
  const g = await certtool(dir, leaf);
  assert.ok(
    g.ok,
    `GnuTLS now enforces URI constraints — update docs/LIBRARY.md (name constraints) and this pin: ${g.why}`,
  );
});

test('pinned: Python cryptography refuses any chain whose CA constrains URIs; --no-uri-constraint is for such meshes', async () => {
  const py = String.raw`
import sys
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
store = Store(x509.load_pem_x509_certificates(open(sys.argv[1], 'rb').read()))
for f in sys.argv[2:]:
    certs = x509.load_pem_x509_certificates(open(f, 'rb').read())
    try:
        PolicyBuilder().store(store).build_client_verifier().verify(certs[0], certs[1:]); print('OK')
    except Exception as e: print('REFUSED', e)
`;
  const run = async (dir: string, leaves: Leaf[]) =>
    String(
      (await execa('python3', ['-c', py, path.join(dir, 'root', 'ca.crt'), ...leaves.map((l) => l.cert)])).stdout,
    ).split('\n');
  const constrained = path.join(home, 'issued');
  assert.match(
    (await run(constrained, [{ name: 'ct111', cert: path.join(constrained, 'issued', 'ct111.crt'), key: '' }]))[0]!,
    /REFUSED .*unsupported name constraint/,
  );
  const { dir, ours } = await makeCa('no-uri', ['--no-uri-constraint']);
  const stolen = await stolenSet(dir);
  const lines = await run(dir, [...ours, ...stolen]);
  assert.equal(
    lines.slice(0, ours.length),
    ours.map(() => 'OK'),
    lines.join('\n'),
  );
  assert.match(lines[ours.length]!, /REFUSED .*no permitted name constraints matched/, 'DNS still constrained');
  assert.match(lines[ours.length + 1]!, /REFUSED .*no permitted name constraints matched/, 'IP still constrained');
  assert.is(lines[ours.length + 2], 'OK', 'without the URI constraint a foreign SPIFFE ID is not refused');
});

test.run();
