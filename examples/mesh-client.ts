// A mesh client: an agent attaches over mTLS with undici's fetch and the mesh dispatcher.
// Run: RIVET_NODE_DIR=/etc/rivetos AGENT=opus SERVER=https://ct111.mesh:3000 npx tsx examples/mesh-client.ts
import { fetch } from 'undici';
import { loadMeshTls, meshDispatcher } from '../lib/index.ts';

const agent = process.env.AGENT ?? 'opus';
const tls = loadMeshTls({ dir: process.env.RIVET_NODE_DIR ?? '/etc/rivetos', agent });
const node = process.env.NODE_ID ?? 'ct111';
// Connecting by IP? pass { servername: 'ct111.mesh' }: the server must still prove that name.
const dispatcher = meshDispatcher(tls, { servername: process.env.SERVERNAME });
const server = process.env.SERVER ?? `https://${node}.${tls.domain}:3000`;

const res = await fetch(`${server}/session.attach?agent=${encodeURIComponent(`${agent}@${node}`)}`, { dispatcher });
console.log(res.status, await res.json());
await dispatcher.close();
