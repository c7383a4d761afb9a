/** Process figures for the benchmarks, from /proc (Linux). */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const ticksToMs = (ticks: number) => (ticks * 1000) / CLK_TCK;

interface Stat {
  /** `comm`: the executable's name, e.g. `postgres`. */
  name: string;
  /** The fields after the name: [0] is field 3 (state), [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime. */
  fields: string[];
}

/** /proc/PID/stat, or null when the process is gone. */
function stat(pid: number | 'self'): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  return { name: text.slice(text.indexOf('(') + 1, close), fields: text.slice(close + 2).split(' ') };
}

const pids = () =>
  readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number);

/** utime and stime of a whole process (all threads), in ms; zero once it is gone. */
export function cpuMs(pid: number): { user: number; sys: number; total: number } {
  const fields = stat(pid)?.fields;
  const user = ticksToMs(Number(fields?.[11] ?? 0));
  const sys = ticksToMs(Number(fields?.[12] ?? 0));
  return { user, sys, total: user + sys };
}

/** CPU ms of the processes together (`system`: kernel time only); those gone count 0. */
export function cpuMsOf(of: number[], part: 'all' | 'system' = 'all'): number {
  let total = 0;
  for (const pid of of) total += part === 'all' ? cpuMs(pid).total : cpuMs(pid).sys;
  return total;
}

/** The process and all its descendants. */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const pid of pids()) {
    const s = stat(pid);
    if (s) parent.set(pid, Number(s.fields[1]));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of parent) if (ppid === out[i]) out.push(pid);
  return out;
}

/** CPU of this process's children that have exited and been waited for (cutime + cstime), in ms. */
export function childrenCpuMs(): number {
  const fields = stat('self')?.fields ?? [];
  return ticksToMs(Number(fields[13] ?? 0) + Number(fields[14] ?? 0));
}

/**
 * CPU time every core of this machine spent working (user, nice, system, irq, softirq), in ms:
 * not idle, iowait or steal, so other VMs on the host do not count.
 */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number);
  return ticksToMs((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0));
}

/** utime + stime, in ms, of each process whose name (`comm`, e.g. `postgres`) is `name`, by pid. */
export function cpuMsByPid(name: string): Map<number, number> {
  const byPid = new Map<number, number>();
  for (const pid of pids()) {
    const s = stat(pid);
    if (s?.name === name) byPid.set(pid, ticksToMs(Number(s.fields[11]) + Number(s.fields[12])));
  }
  return byPid;
}

/**
 * CPU the processes used between two `cpuMsByPid` samples: those started since count whole,
 * those that exited meanwhile are missing (a pool closing an idle connection would otherwise
 * make the difference of two sums negative).
 */
export function cpuMsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}
