import { spawn } from 'node:child_process';
import { clip, type ProbeResult } from './probe.ts';

/** ok when argv exits with expectExit before timeoutMs; on timeout the process group is killed. */
export function commandProbe(
  name: string,
  argv: readonly string[],
  expectExit: number,
  timeoutMs: number,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    if (!cmd) {
      resolve({ name, ok: false, detail: 'empty command' });
      return;
    }
    let settled = false;
    let stderr = '';
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    const done = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ name, ok, detail: clip(detail) });
    };
    const timer = setTimeout(() => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already exited */
      }
      done(false, `timed out after ${timeoutMs} ms`);
    }, timeoutMs);
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 512) stderr += d.toString();
    });
    child.once('error', (e) => done(false, `cannot run ${cmd}: ${e.message}`));
    child.once('close', (code, signal) => {
      const got = code ?? signal;
      const ok = code === expectExit;
      done(
        ok,
        ok
          ? `exit ${code}`
          : `exit ${got} (expected ${expectExit})${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
      );
    });
  });
}
