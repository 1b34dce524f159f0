// A private systemd for tests: PID 1 of its own PID and mount namespace (../shared TOOLING.md "systemd":
// `systemctl` and `systemd-run` do not reach the machine's PID 1, which is not systemd), with /run on a
// tmpfs of its own, the test's units in /run/systemd/system, started on a target of the test's. Commands
// run inside it through nsenter. Stopped with SIGRTMIN+14 (systemd's "power off now"; SIGTERM would only
// make it re-execute), then the unshare process is waited for (SIGKILL after 20 s).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from './skip.ts';

export const SYSTEMD = '/lib/systemd/systemd';

export interface PrivateSystemd {
  /** systemd's PID (in this PID namespace). */
  readonly pid: number;
  /** Runs argv inside the namespace (where `systemctl` reaches this systemd), from `wd` if given. */
  inside(argv: string[], wd?: string): { status: number | null; stdout: string; stderr: string };
  /** A property of a unit (`systemctl show -p PROP --value UNIT`). */
  show(unit: string, prop: string): string;
  stop(): Promise<void>;
}

/** Whether this machine can run one (fails in CI, skips elsewhere: support/skip.ts requireTool). */
export function canRunPrivateSystemd(): boolean {
  return (
    requireTool('unshare', 'private systemd') &&
    requireTool('nsenter', 'private systemd') &&
    requireTool(SYSTEMD, 'private systemd')
  );
}

/** Boots systemd on `target` with `units` (name -> text) under `dir`; resolves once systemd runs. */
export async function startPrivateSystemd(
  dir: string,
  units: Record<string, string>,
  target: string,
): Promise<PrivateSystemd> {
  const unitDir = join(dir, 'units');
  mkdirSync(unitDir, { recursive: true });
  for (const [name, text] of Object.entries(units)) writeFileSync(join(unitDir, name), text);
  const boot = join(dir, 'boot.sh');
  writeFileSync(
    boot,
    `#!/bin/sh
mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && cp "$1"/* /run/systemd/system/ || exit 1
export container=nixfleet-test
exec ${SYSTEMD} --system --unit=${target} --log-target=null --show-status=no
`,
  );
  chmodSync(boot, 0o755);
  const unshare = spawn(
    'unshare',
    ['--pid', '--fork', '--kill-child=SIGKILL', '--mount', '--uts', '--mount-proc'].concat([
      '--propagation',
      'private',
      boot,
      unitDir,
    ]),
    { stdio: 'ignore' },
  );
  let pid = 0;
  const sd = handle(unshare, () => pid);
  try {
    await until('systemd to start', () => {
      const children = readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8');
      pid = Number(children.trim().split(/\s+/)[0] ?? 0);
      return pid > 0 && sd.inside(['systemctl', 'is-system-running']).stdout.trim() !== '';
    });
  } catch (e) {
    await sd.stop();
    throw e;
  }
  return sd;
}

function handle(unshare: ChildProcess, pid: () => number): PrivateSystemd {
  const inside = (argv: string[], wd?: string) => {
    const nsenter = ['-t', String(pid()), '-m', '-p', ...(wd ? [`--wd=${wd}`] : []), '--', ...argv];
    const r = spawnSync('nsenter', nsenter, { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  return {
    get pid() {
      return pid();
    },
    inside,
    show: (unit, prop) => inside(['systemctl', 'show', '-p', prop, '--value', unit]).stdout.trim(),
    async stop() {
      if (pid() > 0) spawnSync('kill', ['-s', 'RTMIN+14', String(pid())]);
      if (unshare.pid && unshare.exitCode === null && unshare.signalCode === null) {
        const exited = new Promise((r) => unshare.once('exit', r));
        const force = setTimeout(() => unshare.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(force);
      }
    },
  };
}

/** Polls `ok` every 200 ms until it holds; fails after `boundMs` (generous: a loaded machine is slow). */
export async function until(what: string, ok: () => boolean, boundMs = 120_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
