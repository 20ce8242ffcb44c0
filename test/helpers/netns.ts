// Several hosts on one machine (issue 15): a Linux network namespace per host, all on one bridge
// that lives in a namespace of its own, each with its own /etc/hosts (`ip netns exec` bind-mounts
// /etc/netns/<ns>/hosts over /etc/hosts). Everything the mesh made is removed by `close()`, and
// by the next run if a crash skipped it (namespaces are named rv<pid>-…, dead pids are swept).
import fs from 'node:fs';
import path from 'node:path';
import { execa, type Options } from 'execa';

export type Host = { name: string; ns: string; ip: string; names: string[] };
export type Mesh = {
  hosts: Map<string, Host>;
  /** Runs a command inside a host's namespace (its /etc/hosts in place). */
  exec: (host: string, file: string, args: string[], opts?: Options) => ReturnType<typeof execa>;
  /** Takes a host's link down or up (the host stays running, unreachable). */
  link: (host: string, up: boolean) => Promise<void>;
  close: () => Promise<void>;
};

const SUBNET = '10.77.0';

async function ip(args: string[]): Promise<void> {
  await execa('ip', args);
}

/** Why namespaces cannot be used here, or undefined when they can (root, iproute2, a kernel that allows it). */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not running as root';
  const probe = `rvprobe${process.pid}`;
  try {
    await ip(['netns', 'add', probe]);
    await ip(['netns', 'del', probe]);
    return undefined;
  } catch (err) {
    return `ip netns add failed: ${String((err as { stderr?: string }).stderr ?? err).split('\n')[0]}`;
  }
}

async function sweepStale(): Promise<void> {
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  for (const line of String(r.stdout).split('\n')) {
    const m = /^(rv(\d+)-\S+)/.exec(line);
    if (!m) continue;
    try {
      process.kill(Number(m[2]), 0);
      continue;
    } catch {
      /* its test is gone */
    }
    await execa('ip', ['netns', 'del', m[1]!], { reject: false });
    fs.rmSync(path.join('/etc/netns', m[1]!), { recursive: true, force: true });
  }
}

/**
 * Hosts named like ct110, each reachable from every other as `<name>` and as every name in
 * `aliases[name]` (e.g. ct110.mesh, ct110-mcp.mesh).
 */
export async function makeMesh(names: string[], aliases: Record<string, string[]> = {}): Promise<Mesh> {
  await sweepStale();
  const tag = `rv${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  const sw = `${tag}-sw`;
  const hosts = new Map<string, Host>();
  names.forEach((name, i) =>
    hosts.set(name, { name, ns: `${tag}-${name}`, ip: `${SUBNET}.${10 + i}`, names: [name, ...(aliases[name] ?? [])] }),
  );
  const hostsFile =
    ['127.0.0.1 localhost', '::1 localhost', ...[...hosts.values()].map((h) => `${h.ip} ${h.names.join(' ')}`)].join(
      '\n',
    ) + '\n';
  const made: string[] = [];
  const close = async () => {
    for (const ns of made.reverse()) {
      await execa('ip', ['netns', 'del', ns], { reject: false });
      fs.rmSync(path.join('/etc/netns', ns), { recursive: true, force: true });
    }
  };
  try {
    await ip(['netns', 'add', sw]);
    made.push(sw);
    await ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    let i = 0;
    for (const h of hosts.values()) {
      await ip(['netns', 'add', h.ns]);
      made.push(h.ns);
      fs.mkdirSync(path.join('/etc/netns', h.ns), { recursive: true });
      fs.writeFileSync(path.join('/etc/netns', h.ns, 'hosts'), hostsFile);
      const port = `p${i++}`;
      // The veth is made in the host's namespace; its peer goes to the switch.
      await ip(['-n', h.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
      await ip(['-n', sw, 'link', 'set', port, 'master', 'br0']);
      await ip(['-n', sw, 'link', 'set', port, 'up']);
      await ip(['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0']);
      await ip(['-n', h.ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
    }
  } catch (err) {
    await close();
    throw err;
  }
  const hostOf = (name: string) => {
    const h = hosts.get(name);
    if (!h) throw new Error(`no host ${name} in this mesh`);
    return h;
  };
  return {
    hosts,
    exec: (name, file, args, opts = {}) => execa('ip', ['netns', 'exec', hostOf(name).ns, file, ...args], opts),
    link: async (name, up) => {
      await ip(['-n', hostOf(name).ns, 'link', 'set', 'eth0', up ? 'up' : 'down']);
    },
    close,
  };
}
