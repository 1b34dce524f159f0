// CPU time (user + sys) of this process's finished children, for benchmarks that run commands: Linux
// adds a child's times, and those of the children it waited for, to its parent's cutime/cstime once
// the parent has waited for it. Node has no API for it (process.resourceUsage is the process itself).
import { readFileSync } from 'node:fs';

/** sysconf(_SC_CLK_TCK): 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/** Milliseconds of CPU the children this process has waited for used so far (10 ms resolution). */
export function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, cutime 16, cstime 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[16 - 3]) + Number(fields[17 - 3]);
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}
