// Agent certificates on a node (DESIGN §6 step 3, §4.3): agents/<id>.key is made here and never
// leaves; the node asks `POST /agents` over mTLS with its own certificate. The same call re-issues
// an agent with its existing key when the node renews (agents piggyback on their node).
import { RivetError } from '../core/errors.ts';
import { csrForKey } from '../sign/csr.ts';
import { leafProfile } from '../sign/profile.ts';
import { loadMeshTls } from '../mesh/tls.ts';
import { readText } from '../sys/files.ts';
import type { AgentId, MeshDomain, NodeId } from '../core/identity.ts';
import type { Endpoint } from './settings.ts';
import { postMtls } from './datahub.ts';
import { agentFiles, checkReceived, keySpki, newKey, readInstalled, writePublic } from './install.ts';

export type AgentState = 'ok' | 'missing' | 'expired' | 'key-mismatch';

export async function agentState(dir: string, agent: AgentId, nodeId: NodeId, domain: MeshDomain): Promise<AgentState> {
  const f = agentFiles(dir, agent);
  const inst = await readInstalled(f.cert, f.key, domain);
  if (!inst || inst.id.kind !== 'agent' || inst.id.agentId !== agent || inst.id.nodeId !== nodeId) return 'missing';
  if (!inst.keyMatches) return 'key-mismatch';
  return inst.info.notAfter.getTime() > Date.now() ? 'ok' : 'expired';
}

/**
 * Mints (or re-issues, keeping its key) agents/<agent>.crt. The key is made first and kept if a
 * run dies before the certificate arrives; the next run asks again for the same key.
 */
export async function issueAgent(
  dir: string,
  ep: Endpoint,
  agent: AgentId,
  nodeId: NodeId,
  domain: MeshDomain,
): Promise<{ serial: string; notAfter: Date; newKey: boolean }> {
  const f = agentFiles(dir, agent);
  const had = await keySpki(f.key);
  // The CSR asks for exactly the agent profile, so the CA can sign it in a group (lib/ops/issue.ts signLeaves).
  const profile = leafProfile({ kind: 'agent', agentId: agent, nodeId }, domain);
  const csr = had ? await csrForKey(f.key, profile) : await newKey(f.key, profile);
  const spki = (await keySpki(f.key))!;
  const chainPem = await readText(f.ca);
  if (!chainPem) throw new RivetError(`${f.ca} is missing — re-run \`provision-ct enroll\``, 'no_chain');
  const reply = await postMtls(ep, loadMeshTls({ dir, domain }), '/agents', { csr });
  const leaf = checkReceived(reply.cert, { kind: 'agent', agentId: agent, nodeId }, domain, spki, chainPem);
  await writePublic(f.cert, reply.cert);
  return { serial: leaf.serial, notAfter: leaf.notAfter, newKey: !had };
}
