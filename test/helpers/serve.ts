// `rivet-ca serve` as a real child process, for the suites that need the CLI's service rather than
// startEnrollService in process: started on 127.0.0.1:0 (or `listen`), resolved with the port it
// prints, its stderr collected. `wrap` runs it under another command (e.g. `sh -c 'ulimit -n …'`).
import { execa, type Options, type ResultPromise } from 'execa';
import { CLI } from './ca.ts';

export type ServeProcess = { child: ResultPromise; port: number; stderr: () => string; stop: () => Promise<string> };
export type ServeOptions = {
  env: Record<string, string>;
  args?: string[];
  listen?: string;
  wrap?: string[];
  execa?: Options;
  timeoutMs?: number;
};

export async function spawnServe(o: ServeOptions): Promise<ServeProcess> {
  const argv = [CLI, 'serve', '--listen', o.listen ?? '127.0.0.1:0', ...(o.args ?? [])];
  const [file, ...args] = o.wrap ? [...o.wrap, ...argv] : argv;
  const child = execa(file!, args, { reject: false, ...o.execa, env: o.env }) as ResultPromise;
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d;
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const guard = setTimeout(
      () => reject(new Error(`serve printed no port within ${o.timeoutMs ?? 30_000} ms: ${err}`)),
      o.timeoutMs ?? 30_000,
    );
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /listening on https:\/\/\S+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(guard);
        resolve(Number(m[1]));
      }
    });
    void child.then(() => {
      clearTimeout(guard);
      reject(new Error(`serve exited before listening: ${err}`));
    });
  });
  return {
    child,
    port,
    stderr: () => err,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
      return err;
    }, // idempotent: a second call finds it gone
  };
}
