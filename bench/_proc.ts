/** Process figures for the benchmarks, from /proc (Linux). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** utime and stime of a whole process (all threads), in ms. */
export function cpuMs(pid: number): { user: number; sys: number; total: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the name start at field 3 (state); utime is field 14, stime 15.
  const user = (Number(fields[11]) * 1000) / CLK_TCK;
  const sys = (Number(fields[12]) * 1000) / CLK_TCK;
  return { user, sys, total: user + sys };
}

/** CPU of this process's children that have exited and been waited for (cutime + cstime), in ms. */
export function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime is field 16, cstime 17.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLK_TCK;
}

/**
 * CPU time every core of this machine spent working (user, nice, system, irq, softirq), in ms:
 * not idle, iowait or steal, so other VMs on the host do not count.
 */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number);
  return (((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)) * 1000) / CLK_TCK;
}
