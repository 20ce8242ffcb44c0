// One mTLS request as a mesh identity, for tests that run it inside a host's network namespace:
//   node --import tsx test/helpers/mesh-probe.mts <node-dir> <agent|-> <url> [servername]
// Prints `HTTP <status> <body>` or `refused: <code>` and exits 0 either way (the caller judges).
import https from 'node:https';
import { loadMeshTls, meshClientOptions } from '../../lib/index.ts';

const [dir, agent, url, servername] = process.argv.slice(2) as [string, string, string, string | undefined];
const tls = meshClientOptions(
  loadMeshTls({ dir, ...(agent === '-' ? {} : { agent }) }),
  servername ? { servername } : {},
);
const req = https.request(url, { ...tls, agent: false, signal: AbortSignal.timeout(5000) }, (res) => {
  let body = '';
  res.on('data', (c) => {
    body += c;
  });
  res.on('end', () => {
    console.log(`HTTP ${res.statusCode} ${body}`);
  });
});
req.on('error', (err) => console.log(`refused: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
req.end();
