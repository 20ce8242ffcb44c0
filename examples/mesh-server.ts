// A mesh server in ~30 lines: mTLS required, hot reload, session.attach, allow-list, CRL push.
// Run: RIVET_NODE_DIR=/etc/rivetos PORT=3000 [HOST=127.0.0.1] npx tsx examples/mesh-server.ts
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import {
  loadMeshTls,
  meshServerOptions,
  watchMeshTls,
  crlReceiver,
  attachSession,
  peerIdentity,
  authorize,
  loadAllowList,
  MeshAuthError,
} from '../lib/index.ts';

const dir = process.env.RIVET_NODE_DIR ?? '/etc/rivetos';
const allow = loadAllowList(process.env.ALLOW_LIST ?? `${dir}/allow-list.json`, {
  onError: (e) => console.error(e.message),
});
// Takes pushes from the CA host recorded in node.json at enrollment only (or pass allowFrom).
const receiveCrl = crlReceiver({ dir });

const server = https.createServer(meshServerOptions(loadMeshTls({ dir })), (req, res) => {
  if (req.url === '/api/mesh/crl') return receiveCrl(req, res);
  const socket = req.socket as TLSSocket;
  try {
    if (req.url?.startsWith('/session.attach?agent=')) {
      const { agentId, nodeId, sessionToken } = attachSession(socket, decodeURIComponent(req.url.split('=')[1]!));
      return res.end(JSON.stringify({ agentId, nodeId, sessionToken }));
    }
    const who = peerIdentity(socket);
    authorize(who, 'whoami', allow);
    res.end(JSON.stringify(who));
  } catch (err) {
    res
      .writeHead(err instanceof MeshAuthError ? err.status : 500)
      .end(JSON.stringify({ error: (err as Error).message }));
  }
});
// New CRLs or chain: new handshakes use them, open connections of peers that no longer verify are
// cut (≤ 1 s); refused clients get 403 JSON and each refusal is logged with the peer CN and reason.
watchMeshTls(server, {
  dir,
  onReload: () => console.log('TLS material reloaded'),
  onError: (e) => console.error(e.message),
  logger: (e) => console.warn(`${e.event} ${e.cn ?? '(no cert)'} ${e.remote ?? ''}: ${e.reason}`),
});
server.listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => console.log('mesh server up'));
