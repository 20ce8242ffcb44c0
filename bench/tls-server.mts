// A mesh TLS server in its own process for the handshake benchmark (section 5), so the client's
// work does not share its CPU: node cert + chain, client certs required, CRLs optional.
// argv: <node-dir> <crl-file>… ; prints its port on stdout.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';

const [dir, ...crlFiles] = process.argv.slice(2) as [string, ...string[]];
const read = (f: string) => fs.readFileSync(path.join(dir, f));
const server = tls.createServer(
  {
    key: read('node.key'),
    cert: read('node.crt'),
    ca: read('rivet-ca.crt'),
    minVersion: 'TLSv1.3',
    requestCert: true,
    rejectUnauthorized: true,
    ...(crlFiles.length ? { crl: crlFiles.map((f) => fs.readFileSync(f)) } : {}),
  },
  (socket) => socket.end(),
);
server.on('tlsClientError', () => {});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
process.on('SIGTERM', () => process.exit(0));
