// lib/sign/profile.ts: what a leaf contains comes from the identity alone (DESIGN §3).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leafProfile, nodeBaseNames } from '../../../lib/sign/profile.ts';
import { OID } from '../../../lib/x509/cert.ts';
import { meshDomain, parseIdentity } from '../../../lib/core/identity.ts';
import { parseSan } from '../../../lib/core/san.ts';

const mesh = meshDomain('mesh');

test('a node gets its three listener names, its SPIFFE ID, server and client auth', () => {
  assert.equal(nodeBaseNames('ct1', mesh), ['ct1.mesh', 'ct1-mcp.mesh', 'ct1-runtime-rpc.mesh']);
  assert.equal(leafProfile(parseIdentity('ct1', mesh), mesh), {
    template: 'node.cnf',
    cn: 'ct1.mesh',
    dns: ['ct1.mesh', 'ct1-mcp.mesh', 'ct1-runtime-rpc.mesh'],
    ips: [],
    uris: ['spiffe://mesh/node/ct1'],
    eku: [OID.serverAuth, OID.clientAuth],
  });
});

test('extra node SANs are added once each, DNS and IP apart', () => {
  const p = leafProfile(
    parseIdentity('ct1', mesh),
    mesh,
    ['DNS:ct1.lan', 'DNS:ct1.mesh', 'IP:10.0.0.1', 'DNS:ct1.lan'].map(parseSan),
  );
  assert.equal(p.dns, ['ct1.mesh', 'ct1-mcp.mesh', 'ct1-runtime-rpc.mesh', 'ct1.lan']);
  assert.equal(p.ips, ['10.0.0.1']);
});

test('agents and users are client-only, with no DNS names, and take no extra SANs', () => {
  assert.equal(leafProfile(parseIdentity('opus@ct1', mesh), mesh), {
    template: 'agent.cnf',
    cn: 'opus@ct1',
    dns: [],
    ips: [],
    uris: ['spiffe://mesh/agent/ct1/opus'],
    eku: [OID.clientAuth],
  });
  assert.is(leafProfile(parseIdentity('alice@external', mesh), mesh).template, 'user.cnf');
  assert.throws(
    () => leafProfile(parseIdentity('opus@ct1', mesh), mesh, [parseSan('DNS:x.mesh')]),
    /"opus@ct1" is a agent identity: extra SANs \(DNS:x\.mesh\) are only for node certs/,
  );
});

test.run();
