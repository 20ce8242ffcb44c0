// `provision-ct renew` (DESIGN §4.3, §6): over mTLS with the node's current certificate, the key
// re-used, the certificate rotated once less than `within` is left. The agents piggyback: when the
// node renews they are re-issued in the same run (and any agent that is itself due or missing).
// The CRL is pulled first, so a lapsed local CRL does not block the handshake that renews.
import { RivetError } from '../core/errors.ts';
import { csrForKey } from '../sign/csr.ts';
import { readText } from '../sys/files.ts';
import { loadMeshTls } from '../mesh/tls.ts';
import { installCrlBundle } from '../distribute/install.ts';
import { pullCrl } from '../distribute/pull.ts';
import { daysLeft } from '../core/duration.ts';
import { isRevoked, parseCrlBundle } from '../x509/crl.ts';
import { commonName, type Identity } from '../core/identity.ts';
import { endpointOf, readSettings, type NodeSettings } from './settings.ts';
import { DatahubRefused, postMtls } from './datahub.ts';
import { checkReceived, keySpki, listAgents, readInstalled, withNodeDir, writePublic } from './install.ts';
import { agentFiles } from './install.ts';
import { issueAgent } from './agents.ts';

export type RenewLine = {
  cn: string;
  action: 'renewed' | 'not-due' | 'skipped' | 'failed';
  serial?: string;
  notAfter?: Date;
  why?: string;
};

export async function requireSettings(dir: string): Promise<NodeSettings> {
  const s = await readSettings(dir);
  if (!s)
    throw new RivetError(
      `${dir} holds no node.json — this node was not enrolled by provision-ct; run \`provision-ct enroll --node-id … --datahub … --ca-fingerprint …\``,
      'not_enrolled',
    );
  return s;
}

export async function renewNode(
  dir: string,
  opts: { withinMs: number; log: (line: string) => void },
): Promise<RenewLine[]> {
  const s = await requireSettings(dir);
  const ep = endpointOf(s);
  return withNodeDir(dir, 'renew', async (f) => {
    try {
      const r = await pullCrl({ dir: f.dir, datahub: ep.base, connectTo: ep.connectTo });
      opts.log(
        `crl.pem: ${r.installed ? 'updated' : 'unchanged'} (${r.crls.map((c) => `${c.issuer} #${c.crlNumber}`).join(', ')})`,
      );
    } catch (err) {
      opts.log(`crl.pem: pull failed, renewing with the installed one: ${(err as Error).message}`);
    }
    const lines: RenewLine[] = [];
    const id: Identity = { kind: 'node', nodeId: s.nodeId };
    const cn = commonName(id, s.domain);
    const node = await readInstalled(f.cert, f.key, s.domain);
    if (!node || !node.keyMatches)
      throw new RivetError(
        `${f.cert} is missing or does not match node.key — re-run \`provision-ct enroll\``,
        'not_enrolled',
      );
    const due = (notAfter: Date) => notAfter.getTime() - Date.now() < opts.withinMs;
    let nodeRenewed = false;
    if (due(node.info.notAfter)) {
      try {
        // Same names as the installed certificate: what the CA re-issues (and can sign in a group).
        const csr = await csrForKey(f.key, { cn, dns: node.info.dns, ips: node.info.ips, uris: node.info.uris });
        const reply = await postMtls(ep, loadMeshTls({ dir: f.dir, domain: s.domain }), '/renew', { csr });
        const leaf = checkReceived(reply.cert, id, s.domain, (await keySpki(f.key))!, (await readText(f.ca)) ?? '');
        await writePublic(f.cert, reply.cert);
        nodeRenewed = true;
        lines.push({
          cn,
          action: 'renewed',
          serial: leaf.serial,
          notAfter: leaf.notAfter,
          why: `was serial ${node.info.serial}, ${daysLeft(node.info.notAfter)} days left; key unchanged`,
        });
        await installCrlBundle(f.dir, reply.crl).catch((err) =>
          opts.log(`crl.pem from /renew not installed: ${(err as Error).message}`),
        );
      } catch (err) {
        lines.push({ cn, action: 'failed', why: explain(err, node.info.serial) });
        return lines; // agents cannot renew on a node certificate the CA refused
      }
    } else {
      lines.push({ cn, action: 'not-due', serial: node.info.serial, notAfter: node.info.notAfter });
    }
    const agents = [...new Set([...s.agents, ...(await listAgents(f))])].sort();
    const crls = parseCrlBundle((await readText(f.crl)) ?? '');
    for (const agent of agents) {
      const af = agentFiles(f.dir, agent);
      const a = await readInstalled(af.cert, af.key, s.domain);
      const acn = `${agent}@${s.nodeId}`;
      // A revoked agent stays cut off: the CA refuses its key, and minting a new key here would
      // bring back what the operator revoked. Reported, not failed, so the daily run stays green.
      if (a && isRevoked(crls, a.info.serial)) {
        lines.push({
          cn: acn,
          action: 'skipped',
          serial: a.info.serial,
          why: `revoked — remove agents/${agent}.* if it is gone for good, or mint it anew deliberately`,
        });
        continue;
      }
      if (a?.keyMatches && !nodeRenewed && !due(a.info.notAfter)) {
        lines.push({ cn: acn, action: 'not-due', serial: a.info.serial, notAfter: a.info.notAfter });
        continue;
      }
      try {
        const r = await issueAgent(f.dir, ep, agent, s.nodeId, s.domain);
        lines.push({
          cn: acn,
          action: 'renewed',
          serial: r.serial,
          notAfter: r.notAfter,
          why: nodeRenewed ? `with node ${s.nodeId}` : a ? 'due' : 'was missing',
        });
      } catch (err) {
        lines.push({ cn: acn, action: 'failed', why: explain(err) });
      }
    }
    return lines;
  });
}

function explain(err: unknown, serial?: string): string {
  const msg = (err as Error).message;
  if (err instanceof DatahubRefused && err.remoteReason === 'CERT_REVOKED') {
    return `${msg} — certificate ${serial ?? ''} is revoked; only a new enrollment (provision-ct enroll --force, with the bootstrap secret or a new token) brings this node back`;
  }
  return msg;
}

export function describeRenew(l: RenewLine): string {
  const until = l.notAfter ? `until ${l.notAfter.toISOString().slice(0, 10)}, ${daysLeft(l.notAfter)} days left` : '';
  switch (l.action) {
    case 'renewed':
      return `renewed  ${l.cn}: serial ${l.serial}, ${until} (${l.why})`;
    case 'not-due':
      return `not due  ${l.cn}: serial ${l.serial}, ${until}`;
    case 'skipped':
      return `skipped  ${l.cn}: serial ${l.serial} (${l.why})`;
    case 'failed':
      return `FAILED   ${l.cn}: ${l.why}`;
  }
}
