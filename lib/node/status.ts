// `provision-ct status`: what is installed in the node dir and what will break soon — node and
// agent certificates (days left, revoked by the installed CRL, key matching), the CRL's age and
// nextUpdate, and the pinned root. `problems` is empty when nothing needs attention.
import fs from 'node:fs';
import { readText } from '../sys/files.ts';
import { ownershipProblems } from '../sys/ownership.ts';
import { parseCertsPem } from '../x509/cert.ts';
import { isRevoked, parseCrlBundle, type CrlInfo } from '../x509/crl.ts';
import { DAY_MS, daysLeft } from '../core/duration.ts';
import { meshDomain } from '../core/identity.ts';
import { readSettings } from './settings.ts';
import { agentFiles, listAgents, nodeFiles, readInstalled } from './install.ts';
import { readCrlState, type CrlEvent, type KeptCa } from '../distribute/crl-state.ts';

export type CertStatus = {
  cn: string;
  file: string;
  serial?: string;
  notAfter?: string;
  daysLeft?: number;
  state: 'ok' | 'due' | 'expired' | 'revoked' | 'missing' | 'key-mismatch';
};
export type CrlStatus = {
  issuer: string;
  crlNumber?: string;
  thisUpdate: string;
  ageHours: number;
  nextUpdate?: string;
  revoked: number;
  state: 'ok' | 'stale' | 'expired';
};
export type NodeStatus = {
  dir: string;
  enrolled: boolean;
  nodeId?: string;
  datahub?: string;
  caFingerprint?: string;
  rootFingerprint?: string;
  certs: CertStatus[];
  crl: CrlStatus[];
  /** Who may push CRLs here (recorded at enrollment); undefined: nobody, pushes are refused. */
  caHost?: string;
  /** From crl-state.json: the last CRL installation, the last refused delivery, CAs kept although a delivery left them out. */
  lastInstall?: Omit<CrlEvent, 'code' | 'message'>;
  lastRefusal?: CrlEvent;
  kept: KeptCa[];
  problems: string[];
};

export async function nodeStatus(dir: string, opts: { withinMs: number; domain?: string }): Promise<NodeStatus> {
  const f = nodeFiles(dir);
  const settings = await readSettings(f.dir).catch(() => undefined);
  const domain = settings?.domain ?? meshDomain(opts.domain ?? 'mesh');
  const problems: string[] = [];
  const st: NodeStatus = {
    dir: f.dir,
    enrolled: false,
    nodeId: settings?.nodeId,
    datahub: settings?.datahub,
    caFingerprint: settings?.caFingerprint,
    caHost: settings?.caHost,
    certs: [],
    crl: [],
    kept: [],
    problems,
  };
  // First: whatever follows was read from files another user may have written (DESIGN §8).
  for (const p of ownershipProblems(f.dir))
    problems.push(`${p.path} ${p.why} — another user could swap this node's files; fix: ${p.fix}`);
  if (!settings) problems.push(`not enrolled: ${f.dir}/node.json is missing — run \`provision-ct enroll\``);
  else if (!settings.caHost)
    problems.push(
      'no CA host recorded in node.json: crlReceiver refuses every CRL push (the pull still works) — re-run `provision-ct enroll`',
    );
  const crlState = await readCrlState(f.dir);
  Object.assign(st, { lastInstall: crlState.lastInstall, lastRefusal: crlState.lastRefusal, kept: crlState.kept });
  if (crlState.problem) problems.push(crlState.problem);

  const chain = await readText(f.ca);
  const root = chain ? parseCertsPem(chain).find((c) => c.x509.issuer === c.x509.subject) : undefined;
  if (root) st.rootFingerprint = `sha256:${root.fingerprint256}`;
  if (!chain) problems.push('rivet-ca.crt is missing');
  else if (settings && st.rootFingerprint !== settings.caFingerprint)
    problems.push(`rivet-ca.crt's root ${st.rootFingerprint ?? '(none)'} is not the pinned ${settings.caFingerprint}`);

  let crls: CrlInfo[] = [];
  const crlPem = await readText(f.crl);
  try {
    crls = crlPem ? parseCrlBundle(crlPem) : [];
  } catch {
    problems.push('crl.pem is unreadable — run `provision-ct fetch-crl`');
  }
  if (!crlPem) problems.push('crl.pem is missing — run `provision-ct fetch-crl`');
  const now = Date.now();
  for (const c of crls) {
    const left = c.nextUpdate ? c.nextUpdate.getTime() - now : Infinity;
    const state = left <= 0 ? 'expired' : left < DAY_MS ? 'stale' : 'ok';
    st.crl.push({
      issuer: c.issuerCNs[0] ?? '?',
      crlNumber: c.crlNumber?.toString(),
      thisUpdate: c.thisUpdate.toISOString(),
      ageHours: Math.round(((now - c.thisUpdate.getTime()) / 3_600_000) * 10) / 10,
      nextUpdate: c.nextUpdate?.toISOString(),
      revoked: c.revoked.length,
      state,
    });
    if (state !== 'ok')
      problems.push(
        `CRL of ${c.issuerCNs[0]} ${state === 'expired' ? 'has expired' : 'expires within a day'} (nextUpdate ${c.nextUpdate?.toISOString()}) — every mTLS hop fails once it lapses; run \`provision-ct fetch-crl\``,
      );
  }

  const check = async (cn: string, certPath: string, keyPath: string) => {
    const inst = await readInstalled(certPath, keyPath, domain);
    if (!fs.existsSync(certPath) || !inst) {
      st.certs.push({ cn, file: certPath, state: 'missing' });
      return;
    }
    const notAfter = inst.info.notAfter;
    const base = {
      cn: inst.info.subjectCNs[0] ?? cn,
      file: certPath,
      serial: inst.info.serial,
      notAfter: notAfter.toISOString(),
      daysLeft: daysLeft(notAfter),
    };
    const state = !inst.keyMatches
      ? 'key-mismatch'
      : isRevoked(crls, inst.info.serial)
        ? 'revoked'
        : notAfter.getTime() <= now
          ? 'expired'
          : notAfter.getTime() - now < opts.withinMs
            ? 'due'
            : 'ok';
    st.certs.push({ ...base, state });
    if (state === 'revoked' || state === 'expired' || state === 'key-mismatch')
      problems.push(
        `${base.cn}: ${state} — ${state === 'revoked' ? 're-enroll with --force' : state === 'expired' ? 'an expired certificate cannot renew; re-enroll with --force' : 're-run `provision-ct enroll`'}`,
      );
  };
  await check(settings ? `${settings.nodeId}.${domain}` : 'node', f.cert, f.key);
  const agents = [...new Set([...(settings?.agents ?? []), ...(await listAgents(f))])].sort();
  for (const a of agents) {
    const af = agentFiles(f.dir, a);
    await check(settings ? `${a}@${settings.nodeId}` : a, af.cert, af.key);
  }
  st.enrolled = !!settings && st.certs[0]?.state !== 'missing';
  return st;
}

export function describeStatus(st: NodeStatus): string[] {
  const out = [
    `node dir   ${st.dir}`,
    `node       ${st.nodeId ?? '(not enrolled)'}${st.datahub ? ` via ${st.datahub}` : ''}`,
    `root       ${st.rootFingerprint ?? '(none)'}${st.caFingerprint && st.caFingerprint === st.rootFingerprint ? ' (pinned)' : ''}`,
  ];
  for (const c of st.certs) {
    out.push(
      c.state === 'missing'
        ? `cert       ${c.cn}: missing (${c.file})`
        : `cert       ${c.cn}: ${c.state}, serial ${c.serial}, until ${c.notAfter!.slice(0, 10)} (${c.daysLeft} days left)`,
    );
  }
  for (const c of st.crl)
    out.push(
      `crl        ${c.issuer} #${c.crlNumber}: ${c.state}, ${c.revoked} revoked, issued ${c.ageHours} h ago, next update ${c.nextUpdate?.slice(0, 16) ?? '-'}`,
    );
  out.push(
    `pushes     ${st.caHost ? `accepted from ${st.caHost} only (the CA host recorded at enrollment; a server's allowFrom overrides it)` : 'refused: no CA host recorded (unless a server sets allowFrom)'}`,
  );
  const event = (e: { at: string; source: string; from?: string }) =>
    `${e.at} by ${e.source}${e.from ? ` from ${e.from}` : ''}`;
  if (st.lastInstall) out.push(`installed  ${event(st.lastInstall)}`);
  if (st.lastRefusal)
    out.push(`refused    ${event(st.lastRefusal)}: ${st.lastRefusal.code} — ${st.lastRefusal.message}`);
  for (const k of st.kept) out.push(`kept       ${k.ca}: ${k.why}`);
  out.push(st.problems.length ? `attention  ${st.problems.join('\n           ')}` : 'attention  none');
  return out;
}
