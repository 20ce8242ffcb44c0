// The idle-connection attacker, as a child process with descriptors of its own: opens `count` TLS
// connections to 127.0.0.1:`port` from `sources` local addresses (127.0.1.1, 127.0.1.2, …), at most
// `pending` handshakes at a time, and sends nothing on them. With `maintain`, every connection the
// server closes is opened again, until a line arrives on stdin; then it waits for the server to
// close what is left. Reports JSON lines on stdout:
//   {"event":"ready", attempts, handshakes, refused, open, maxOpen}   once every first attempt has resolved
//   {"event":"done", attempts, handshakes, refused, open, heldMs: [...], afterStopMs: [...]}
// heldMs: for each connection still open when stop arrived, how long the server kept it after the
// handshake; afterStopMs: when, after stop, each of them was closed.
import tls from 'node:tls';

const [port, count, sources, pending, maintain] = process.argv.slice(2).map(Number);
const stats = { attempts: 0, handshakes: 0, refused: 0, open: 0, maxOpen: 0 };
const live = new Map(); // socket -> handshake time
const heldMs = [];
const afterStopMs = [];
let stopping = 0;
let inFlight = 0;
let firstRound = 0;
let firstSettled = 0;
let next = 0;

function open() {
  if (stopping || inFlight >= pending) return;
  inFlight++;
  stats.attempts++;
  const first = firstRound < count;
  if (first) firstRound++;
  const localAddress = `127.0.1.${1 + (next++ % sources)}`;
  const s = tls.connect({ host: '127.0.0.1', port, localAddress, rejectUnauthorized: false, servername: 'ct110.mesh' });
  let shaken = false;
  const settle = () => {
    inFlight--;
    if (first && ++firstSettled === count) report('ready');
    pump();
  };
  s.once('secureConnect', () => {
    shaken = true;
    stats.handshakes++;
    stats.maxOpen = Math.max(stats.maxOpen, ++stats.open);
    live.set(s, Date.now());
    settle();
  });
  s.on('error', () => {});
  s.once('close', () => {
    if (!shaken) {
      stats.refused++;
      settle();
      return;
    }
    stats.open--;
    const since = live.get(s);
    live.delete(s);
    if (stopping && since !== undefined && s.wasOpenAtStop) {
      heldMs.push(Date.now() - since);
      afterStopMs.push(Date.now() - stopping);
    }
    if (stopping && live.size === 0) {
      report('done');
      process.exit(0);
    }
    pump();
  });
}

function pump() {
  while (!stopping && inFlight < pending && (maintain ? stats.open + inFlight < count : firstRound < count)) open();
}

function report(event) {
  process.stdout.write(
    `${JSON.stringify({ event, ...stats, ...(event === 'done' ? { heldMs, afterStopMs } : {}) })}\n`,
  );
}

process.stdin.once('data', () => {
  stopping = Date.now();
  for (const s of live.keys()) s.wasOpenAtStop = true;
  if (live.size === 0) {
    report('done');
    process.exit(0);
  }
});
pump();
