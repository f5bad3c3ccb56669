/** The figures every bench row is made of: medians over rounds, timings, and the machine's load. */
import os from 'node:os';

export interface Stat {
  median: number;
  min: number;
  max: number;
}

export const stat = (xs: number[]): Stat => {
  const sorted = [...xs].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted[sorted.length - 1] };
};

/** Seconds `fn` took, by the monotonic clock. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** The 1-minute load average over the machine's CPUs: 1.0 is every CPU busy. */
export const load = () => Number((os.loadavg()[0] / os.cpus().length).toFixed(2));
