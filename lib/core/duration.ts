// Durations as operators write them: 30d, 12h, 15m, 90s.
import { UsageError, show } from './errors.ts';

const UNIT: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
export const DAY_MS = UNIT.d!;

export function parseDuration(text: string, what = 'duration'): number {
  const m = /^(\d{1,6})([smhd])$/.exec(String(text));
  if (!m) throw new UsageError(`${what} ${show(text)} must look like 30d, 12h, 15m or 90s`);
  return Number(m[1]) * UNIT[m[2]!]!;
}

export function daysLeft(notAfter: Date, now = new Date()): number {
  return Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
}
