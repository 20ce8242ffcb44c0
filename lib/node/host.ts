// The CA host is a node of its own mesh (DESIGN §6): `rivet-ca host <node-id>` gives it what
// provision-ct gives every other node — node.key made in RIVET_NODE_DIR (0600, never leaves it),
// node.crt, rivet-ca.crt, crl.pem and node.json — signed in process, since the CA is right here:
// no bootstrap secret, no network. `serve` presents this identity and `push` authenticates with
// it. CA-side `renew` renews it (renewHostIfDue) and every change of CRL or chain is installed here
// first (refreshHostTrust), so its crl.pem never lapses even with no mesh server on the host.
import type { Ca } from '../ca/handle.ts';
import { commonName, type Identity, type NodeId } from '../core/identity.ts';
import { parseSan, sanText, type San } from '../core/san.ts';
import { leafProfile } from '../sign/profile.ts';
import { csrForKey } from '../sign/csr.ts';
import { leafValidity } from '../sign/validity.ts';
import { signCsrFor } from '../ops/operator-issue.ts';
import { rootFingerprint } from '../ops/doctor.ts';
import { installCaTrust, caHostOf } from '../distribute/local-trust.ts';
import { readText } from '../sys/files.ts';
import { UsageError } from '../core/errors.ts';
import { DEFAULT_SERVE_PORT } from '../sys/config.ts';
import { keySpki, newKey, readInstalled, withNodeDir, type NodeFiles } from './install.ts';
import { readSettings, sameSettings, writeSettings, type NodeSettings } from './settings.ts';

export type HostOptions = { nodeDir: string; nodeId: NodeId; sans: readonly San[]; withinMs: number; force?: boolean };
export type HostResult = {
  cn: string;
  action: 'issued' | 'renewed' | 'unchanged';
  serial: string;
  notAfter: Date;
  changed: string[];
};

async function installTrust(ca: Ca, f: NodeFiles): Promise<string[]> {
  const hadChain = (await readText(f.ca)) !== undefined;
  const r = await installCaTrust(ca, f.dir);
  return [...(hadChain ? [] : ['rivet-ca.crt']), ...(r.installed ? ['crl.pem'] : [])];
}

export async function installHost(ca: Ca, o: HostOptions): Promise<HostResult> {
  const id: Identity = { kind: 'node', nodeId: o.nodeId };
  const cn = commonName(id, ca.domain);
  const profile = leafProfile(id, ca.domain, o.sans); // refuses a bad SAN before anything is made
  return withNodeDir(o.nodeDir, `host ${o.nodeId}`, async (f) => {
    const previous = await readSettings(f.dir);
    if (previous && previous.nodeId !== o.nodeId) {
      throw new UsageError(
        `${f.dir} already holds node ${previous.nodeId} — the CA host has one node identity; revoke it first or use another RIVET_NODE_DIR`,
        'exists',
      );
    }
    const changed = await installTrust(ca, f);
    const current = await readInstalled(f.cert, f.key, ca.domain);
    const valid =
      current?.keyMatches &&
      current.info.subjectCNs[0] === cn &&
      current.info.notAfter.getTime() - Date.now() > o.withinMs;
    let action: HostResult['action'] = 'unchanged';
    let info = current?.info;
    if (!valid || o.force) {
      const csr = (await keySpki(f.key)) ? await csrForKey(f.key, profile) : await newKey(f.key, profile);
      if (!current) changed.push('node.key');
      // Chain and CRL are in place (above) before node.crt, as provision-ct installs them.
      const issued = await signCsrFor(ca, id, csr, o.sans, leafValidity(), f.cert);
      info = issued.info;
      action = current ? 'renewed' : 'issued';
      changed.push('node.crt');
    }
    const settings: NodeSettings = {
      nodeId: o.nodeId,
      domain: ca.domain,
      datahub: `https://${cn}:${DEFAULT_SERVE_PORT}`,
      caFingerprint: await rootFingerprint(ca),
      agents: previous?.agents ?? [],
      sans: o.sans.map(sanText),
      caHost: o.nodeId, // it pushes to itself by installing directly; this names who others accept
    };
    if (!previous || !sameSettings(previous, settings)) {
      await writeSettings(f.dir, settings);
      changed.push('node.json');
    }
    return { cn, action, serial: info!.serial, notAfter: info!.notAfter, changed };
  });
}

/** After a change of CRL or chain: the host's node dir gets it (a no-op without a host). */
export async function refreshHostTrust(ca: Ca, nodeDir: string): Promise<string[]> {
  if (!(await caHostOf(ca, nodeDir))) return [];
  return withNodeDir(nodeDir, 'host trust', (f) => installTrust(ca, f));
}

/** CA-side `renew`: renews the host's own cert when due (a no-op without a host). */
export async function renewHostIfDue(ca: Ca, nodeDir: string, withinMs: number): Promise<HostResult | undefined> {
  if (!(await caHostOf(ca, nodeDir))) return undefined;
  const s = await readSettings(nodeDir);
  if (!s) return undefined;
  return installHost(ca, { nodeDir, nodeId: s.nodeId, sans: s.sans.map(parseSan), withinMs });
}
