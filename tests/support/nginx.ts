// Test helper: runs the real nginx in the foreground with every path under a temp runtime dir, on
// 127.0.0.1 only. stop() ends it by PID (also registered for process exit, so a failing test does not
// leave it behind). Directories nginx serves must be traversable by its worker user (mkdtemp makes
// 0700 directories: chmod them 0755). Requires nginx (Debian nginx-light): call requireTool('nginx', ...) first.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  writeFileSync,
  existsSync,
  readFileSync,
  mkdtempSync,
  rmSync,
} from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listeningIn } from './netns.ts';

export interface RunningNginx {
  pid: number;
  runtimeDir: string;
  pidFile: string;
  /**
   * SIGHUP, then waits until the new workers serve (nginx reloads asynchronously). `sendHup`: something
   * else sends it (e.g. `nixfleet nginx-config --nginx-pid`).
   */
  reload(sendHup?: () => unknown): Promise<void>;
  /** SIGQUIT (graceful); after 3 s SIGKILL to nginx's whole process group. */
  stop(): Promise<void>;
  /** The box dies: SIGKILL to master and workers at once (the process group); resolves once all are gone. */
  kill9(): Promise<void>;
  /** stderr + error.log, for failure messages. */
  logs(): string;
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function makeRuntimeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-nginx-'));
  // nginx workers run as an unprivileged user (nobody / www-data): they must be able to enter it.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  return dir;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function workers(masterPid: number): number[] {
  try {
    return readFileSync(`/proc/${masterPid}/task/${masterPid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * nginx runs in its own process group (spawned detached, `daemon off`: the workers stay in the master's
 * group), so master and workers are killed together: a worker whose master was SIGKILLed alone would be
 * reparented to init and keep running.
 */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* the group is gone */
  }
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) if (c.pid) killGroup(c.pid);
});

/** Starts nginx with `config` (written to runtimeDir/nginx.conf) and waits until `port` accepts. */
export async function startNginx(opts: {
  config: string;
  runtimeDir: string;
  port: number;
  timeoutMs?: number;
  /** Run inside this network namespace (readiness is then read from /proc, nothing is sent). */
  netns?: string;
}): Promise<RunningNginx> {
  const confPath = join(opts.runtimeDir, 'nginx.conf');
  writeFileSync(confPath, opts.config);
  mkdirSync(join(opts.runtimeDir, 'tmp'), { recursive: true });
  let stderr = '';
  const argv = [
    'nginx',
    '-p',
    opts.runtimeDir,
    '-c',
    confPath,
    '-e',
    'stderr',
    '-g',
    'daemon off;',
  ];
  // `ip netns exec` execs nginx, so the PID stays the nginx master's.
  if (opts.netns) argv.unshift('ip', 'netns', 'exec', opts.netns);
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  running.add(child);
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  let dead = false;
  void exited.then(() => {
    dead = true;
    running.delete(child);
  });
  const logs = () =>
    stderr +
    (existsSync(join(opts.runtimeDir, 'error.log'))
      ? readFileSync(join(opts.runtimeDir, 'error.log'), 'utf8')
      : '');
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const pidFile = join(opts.runtimeDir, 'nginx.pid');
  const ready = () =>
    opts.netns ? Promise.resolve(listeningIn(child.pid!, opts.port)) : portOpen(opts.port);
  while (!(await ready())) {
    if (dead || Date.now() > deadline) {
      if (!dead) killGroup(child.pid!);
      throw new Error(`nginx did not start on port ${opts.port}:\n${logs()}`);
    }
    await new Promise((r) => setTimeout(r, 30));
  }
  return {
    pid: child.pid!,
    runtimeDir: opts.runtimeDir,
    pidFile,
    logs,
    async reload(sendHup?: () => unknown) {
      const before = workers(child.pid!);
      if (sendHup) await sendHup();
      else process.kill(child.pid!, 'SIGHUP');
      // Reload is asynchronous: done when none of the old workers is left and a new one runs.
      const until = Date.now() + 5000;
      for (;;) {
        const now = workers(child.pid!);
        if (now.length > 0 && now.every((p) => !before.includes(p))) break;
        if (Date.now() > until) throw new Error(`nginx did not reload within 5 s:\n${logs()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      if (!dead) {
        child.kill('SIGQUIT');
        const timer = setTimeout(() => killGroup(child.pid!), 3000);
        await exited;
        clearTimeout(timer);
      }
      await groupGone(child.pid!);
    },
    async kill9() {
      killGroup(child.pid!);
      await exited;
      await groupGone(child.pid!);
    },
  };
}

/** Waits (up to 10 s) until no process of the group is left, SIGKILLing stragglers (old workers of a reload). */
async function groupGone(pgid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return; // ESRCH: no process left in the group
    }
    if (Date.now() > deadline) throw new Error(`nginx process group ${pgid} did not exit`);
    killGroup(pgid);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function removeRuntimeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
