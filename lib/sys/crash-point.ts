// Fault injection for the crash tests: the only place production code reads RIVET_CRASH_AT.
/**
 * Fault injection for the crash tests (test/rotate-crash.test.ts): SIGKILLs this process at a
 * named step when RIVET_CRASH_AT names it. Unset in production.
 */
export function crashPoint(step: string): void {
  if (process.env.RIVET_CRASH_AT === step) process.kill(process.pid, 'SIGKILL');
}
