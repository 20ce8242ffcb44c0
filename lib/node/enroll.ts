// `provision-ct enroll` (DESIGN §6): pin the root, make the key here, spend the bootstrap secret (or
// a one-time token) exactly once, install, mint agents over mTLS, write node.json last.
//
// Re-running is safe at any point. A node that is already enrolled changes nothing. A run killed
// half-way left whole files only (each lands by rename), so the next run picks up from what is
// there: an existing node.key is re-used (it never left the node), and if the CA had already
// signed for it, the service recognises the same key and signs again instead of answering 409.
//
// --force re-enrolls a node that holds a usable certificate: a new key (node.key.next until the
// new certificate arrives) and the secret or a new token again. The service still refuses while
// the old certificate is valid, so --force works only after the operator revoked it — a leaked
// bootstrap secret must not be enough to take over an enrolled identity. Same key, new cert:
// that is `provision-ct renew`.
import fs from 'node:fs';
import { RivetError, UsageError } from '../core/errors.ts';
import { csrForKey } from '../sign/csr.ts';
import { leafProfile } from '../sign/profile.ts';
import { parseSan } from '../core/san.ts';
import { commitRename, readText } from '../sys/files.ts';
import { parseCertsPem } from '../x509/cert.ts';
import { isRevoked, parseCrlBundle } from '../x509/crl.ts';
import { installCrlBundle } from '../distribute/install.ts';
import { pullCrl } from '../distribute/pull.ts';
import { daysLeft } from '../core/duration.ts';
import { commonName, type AgentId, type Identity, type NodeId } from '../core/identity.ts';
import {
  endpointOf,
  readSettings,
  requireDatahubName,
  sameSettings,
  writeSettings,
  type Endpoint,
  type NodeSettings,
} from './settings.ts';
import {
  DatahubRefused,
  askDatahubNode,
  datahubNode,
  fetchChainAndClock,
  fetchChainUnverified,
  pinChain,
  pinnedTls,
  postEnroll,
} from './datahub.ts';
import {
  agentFiles,
  checkReceived,
  keySpki,
  newKey,
  readInstalled,
  withNodeDir,
  writePublic,
  type NodeFiles,
} from './install.ts';
import { agentState, issueAgent } from './agents.ts';
import { refuseSkew } from './skew.ts';

export type EnrollOptions = {
  dir: string;
  /** What the operator asked for; `agents` are added to those already recorded. */
  want: NodeSettings;
  /** The bootstrap secret or token, asked for only when a request will carry it. */
  credential: () => string;
  force?: boolean;
  log: (line: string) => void;
};

export type EnrollResult = { enrolled: boolean; changed: string[]; cn: string; serial: string; notAfter: Date };

export async function enrollNode(o: EnrollOptions): Promise<EnrollResult> {
  const { want, log } = o;
  const id: Identity = { kind: 'node', nodeId: want.nodeId };
  const cn = commonName(id, want.domain);
  return withNodeDir(o.dir, `enroll ${want.nodeId}`, async (f) => {
    const previous = await readSettings(f.dir);
    const current = await readInstalled(f.cert, f.key, want.domain);
    const usable =
      current?.keyMatches && current.id.kind === 'node' && current.info.notAfter.getTime() > Date.now()
        ? current
        : undefined;
    const changed: string[] = [];
    const ep = endpointOf(want);
    let caHost: NodeId | undefined = previous?.caHost;

    if (usable && !o.force) await refuseConflicts(f, usable.info.subjectCNs[0]!, cn, want, usable.info.serial);
    const reenrolled = !usable || o.force === true;
    if (reenrolled) {
      requireDatahubName(want); // before the secret is even read
      const credential = o.credential(); // a missing secret is a usage error before any network
      const first = await fetchChainAndClock(ep);
      const pinned = pinChain(first.pem, want.caFingerprint, `${ep.base}/ca.crt`);
      refuseSkew(first.skew, new URL(ep.base).hostname); // before the secret: a half-done enrollment is worse
      log(`pinned root ${pinned.root.subjectCNs[0]} ${want.caFingerprint}`);
      const keyPath = usable ? f.nextKey : f.key; // --force on a usable cert: the old pair stays until the new cert is here
      // The CSR asks for exactly what the CA's profile gives, so the CA can sign it in a group.
      const profile = leafProfile(id, want.domain, want.sans.map(parseSan));
      let csr: string;
      if (await keySpki(keyPath)) {
        csr = await csrForKey(keyPath, profile);
        log(`re-using ${rel(f, keyPath)} from an earlier run (it never left this node)`);
      } else {
        csr = await newKey(keyPath, profile);
        changed.push(rel(f, keyPath));
      }
      let reply;
      try {
        reply = await postEnroll(ep, pinnedTls(pinned.chainPem, want.domain), credential, {
          csr,
          ...(want.sans.length ? { sans: want.sans } : {}),
        });
      } catch (err) {
        if (err instanceof DatahubRefused && err.httpStatus === 409) {
          if (keyPath === f.nextKey) fs.rmSync(f.nextKey, { force: true }); // not signed: nothing to resume
          throw new RivetError(
            `${err.message} — --force re-enrolls only once the operator has revoked ${cn} (\`rivet-ca revoke ${want.nodeId}\`); to refresh the certificate with the same key run \`provision-ct renew\``,
            'already_enrolled',
          );
        }
        throw err;
      }
      const leaf = checkReceived(reply.cert, id, want.domain, (await keySpki(keyPath))!, pinned.chainPem);
      caHost = recordCaHost(datahubNode(reply.servedBy, want.domain), reply.servedBy?.subject, log);
      // Chain and CRL before node.crt: a node.crt on disk implies the files that verify it are there.
      await writePublic(f.ca, pinned.chainPem);
      await installCrlBundle(f.dir, reply.crl);
      if (keyPath === f.nextKey) await commitRename(f.nextKey, f.key);
      await writePublic(f.cert, reply.cert);
      changed.push('rivet-ca.crt', 'crl.pem', 'node.crt');
      log(`enrolled ${cn}: serial ${leaf.serial}, valid until ${leaf.notAfter.toISOString()}`);
    } else {
      changed.push(...(await repairSupportFiles(f, ep, want)));
      // Enrolled before the CA host was recorded: ask who answers the pinned datahub now.
      if (!caHost) {
        const chain = await readText(f.ca);
        try {
          caHost = chain ? recordCaHost(await askDatahubNode(ep, chain, want.domain), undefined, log) : undefined;
        } catch (err) {
          log(
            `warning: cannot ask the datahub which node is the CA host (${(err as Error).message}) — none recorded yet, so crlReceiver refuses pushes; re-run \`provision-ct enroll\` later`,
          );
        }
      }
    }

    const agents = [...new Set([...(previous?.agents ?? []), ...want.agents])].sort() as AgentId[];
    // Revoking a node revokes its agents: after a re-enrollment, an agent the new CRL revokes gets
    // a new key (a revoked key is never certified again). Without a re-enrollment a revoked agent
    // stays cut off, as the operator left it.
    const crls = reenrolled ? parseCrlBundle((await readText(f.crl)) ?? '') : undefined;
    for (const agent of agents) {
      let state = await agentState(f.dir, agent, want.nodeId, want.domain);
      if (state === 'ok' && crls) {
        const af = agentFiles(f.dir, agent);
        const inst = await readInstalled(af.cert, af.key, want.domain);
        if (inst && isRevoked(crls, inst.info.serial)) {
          log(`agent ${agent}@${want.nodeId}: serial ${inst.info.serial} was revoked with the node — new key`);
          fs.rmSync(af.key, { force: true });
          fs.rmSync(af.cert, { force: true });
          state = 'missing';
        }
      }
      if (state === 'ok') continue;
      const r = await issueAgent(f.dir, ep, agent, want.nodeId, want.domain);
      changed.push(`agents/${agent}.crt`);
      log(
        `agent ${agent}@${want.nodeId}: serial ${r.serial}, valid until ${r.notAfter.toISOString()}${r.newKey ? '' : ' (existing key)'}`,
      );
    }
    const settings: NodeSettings = { ...want, agents, ...(caHost ? { caHost } : {}) };
    if (!previous || !sameSettings(previous, settings)) {
      await writeSettings(f.dir, settings);
      changed.push('node.json');
    }
    const now = (await readInstalled(f.cert, f.key, want.domain))!;
    return { enrolled: changed.length > 0, changed, cn, serial: now.info.serial, notAfter: now.info.notAfter };
  });
}

/** The CA host to record (crlReceiver accepts pushes from it alone), or a warning why there is none. */
function recordCaHost(
  node: NodeId | undefined,
  subject: string | undefined,
  log: (line: string) => void,
): NodeId | undefined {
  if (node) log(`CA host ${node}: the datahub answered with its node certificate; only it may push CRLs here`);
  else
    log(
      `warning: the datahub's certificate${subject ? ` (${subject.replace(/\n/g, ', ')})` : ''} is not a mesh node certificate — no CA host recorded, so crlReceiver refuses pushes until it is given allowFrom; the CRL pull still works`,
    );
  return node;
}

/** An enrolled node asked to enroll as someone else, under another CA, or while revoked. */
async function refuseConflicts(
  f: NodeFiles,
  haveCn: string,
  cn: string,
  want: NodeSettings,
  serial: string,
): Promise<void> {
  if (haveCn !== cn)
    throw new UsageError(
      `this node is enrolled as ${haveCn} (${f.cert}) — --force enrolls it as ${cn} (after the operator revoked the old identity)`,
    );
  const chain = await readText(f.ca);
  if (chain) {
    const root = parseCertsPem(chain).find((c) => c.x509.issuer === c.x509.subject);
    if (root && `sha256:${root.fingerprint256}` !== want.caFingerprint) {
      throw new UsageError(
        `this node is enrolled under root sha256:${root.fingerprint256}, not ${want.caFingerprint} — check --ca-fingerprint, or --force to enroll under the new CA`,
      );
    }
  }
  const crl = await readText(f.crl);
  if (crl && isRevoked(parseCrlBundle(crl), serial)) {
    throw new RivetError(
      `${cn}'s certificate (serial ${serial}) is revoked by the installed CRL — re-enroll with --force (needs the bootstrap secret or a new token)`,
      'revoked',
    );
  }
}

/** An enrolled node whose chain or CRL went missing (a run killed between files): fetch them again, no secret. */
async function repairSupportFiles(f: NodeFiles, ep: Endpoint, want: NodeSettings): Promise<string[]> {
  const fixed: string[] = [];
  if (!fs.existsSync(f.ca)) {
    await writePublic(f.ca, pinChain(await fetchChainUnverified(ep), want.caFingerprint, `${ep.base}/ca.crt`).chainPem);
    fixed.push('rivet-ca.crt');
  }
  if (!fs.existsSync(f.crl)) {
    await pullCrl({ dir: f.dir, datahub: ep.base, connectTo: ep.connectTo });
    fixed.push('crl.pem');
  }
  return fixed;
}

const rel = (f: NodeFiles, p: string) => p.slice(f.dir.length + 1);

export function describeEnrolled(r: EnrollResult): string {
  const until = `${r.notAfter.toISOString().slice(0, 10)}, ${daysLeft(r.notAfter)} days left`;
  return r.enrolled
    ? `${r.cn} enrolled (serial ${r.serial}, until ${until}); wrote ${r.changed.join(', ')}`
    : `${r.cn} is already enrolled (serial ${r.serial}, until ${until}) — nothing changed; \`provision-ct renew\` refreshes it, --force re-enrolls`;
}
