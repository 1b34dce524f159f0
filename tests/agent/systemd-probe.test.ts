// The systemd health probe against a real systemd: a private one, PID 1 of its own PID and mount
// namespace (../shared TOOLING.md, "systemd"), with one running and one failed unit. The probe code runs
// inside that namespace, where `systemctl` reaches it. Issue 9.5: a systemd probe forced to always pass
// must fail a test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProbeResult } from '../../agent/probes/probe.ts';
import { requireTool } from '../support/skip.ts';

const SYSTEMD = '/lib/systemd/systemd';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RUN_PROBES = fileURLToPath(new URL('../support/run-probes.ts', import.meta.url));
const UNITS: Record<string, string> = {
  'running.service': '[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/sleep infinity\n',
  'broken.service':
    '[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nExecStart=/bin/false\n',
  'probe-test.target': '[Unit]\nDefaultDependencies=no\nWants=running.service broken.service\n',
};
// PID 1 of the namespace: /run on a tmpfs of its own, the units copied in, then systemd itself.
const BOOT = `#!/bin/sh
mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && cp "$1"/* /run/systemd/system/ || exit 1
export container=nixfleet-test
exec ${SYSTEMD} --system --unit=probe-test.target --log-target=null --show-status=no
`;

function inside(
  pid: number,
  argv: string[],
): { status: number | null; stdout: string; stderr: string } {
  // --wd: nsenter would otherwise start in /, where `--import tsx` does not resolve.
  const r = spawnSync('nsenter', ['-t', String(pid), '-m', '-p', `--wd=${ROOT}`, '--', ...argv], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function until(what: string, ok: () => boolean, boundMs = 60_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('systemd probe: a running unit passes; a failed or unknown unit fails; no unit = no failed units', async () => {
  if (!requireTool('unshare', 'private systemd')) return;
  if (!requireTool('nsenter', 'private systemd')) return;
  if (!requireTool(SYSTEMD, 'private systemd')) return;
  const dir = mkdtempSync(join(tmpdir(), 'nf-sd-probe-'));
  let unshare: ChildProcess | undefined;
  let systemdPid = 0;
  try {
    mkdirSync(join(dir, 'units'));
    for (const [name, text] of Object.entries(UNITS)) writeFileSync(join(dir, 'units', name), text);
    writeFileSync(join(dir, 'boot.sh'), BOOT);
    chmodSync(join(dir, 'boot.sh'), 0o755);
    unshare = spawn(
      'unshare',
      [
        '--pid',
        '--fork',
        '--kill-child=SIGKILL',
        '--mount',
        '--uts',
        '--mount-proc',
        '--propagation',
        'private',
        join(dir, 'boot.sh'),
        join(dir, 'units'),
      ],
      { stdio: 'ignore' },
    );
    assert.ok(unshare.pid);
    await until('systemd to start', () => {
      const children = readFileSync(`/proc/${unshare!.pid}/task/${unshare!.pid}/children`, 'utf8');
      systemdPid = Number(children.trim().split(/\s+/)[0] ?? 0);
      return (
        systemdPid > 0 &&
        inside(systemdPid, ['systemctl', 'is-active', 'running.service']).stdout.trim() === 'active'
      );
    });
    await until(
      'broken.service to fail',
      () => inside(systemdPid, ['systemctl', 'is-failed', 'broken.service']).status === 0,
    );

    const run = (probes: object[]): ProbeResult[] => {
      const r = inside(systemdPid, [
        process.execPath,
        '--import',
        'tsx',
        RUN_PROBES,
        JSON.stringify(probes),
      ]);
      assert.is(r.status, 0, `the probe runner ran: ${r.stderr}`);
      return JSON.parse(r.stdout) as ProbeResult[];
    };
    const [running, broken, unknown, whole] = run([
      { kind: 'systemd', name: 'running', unit: 'running.service' },
      { kind: 'systemd', name: 'broken', unit: 'broken.service' },
      { kind: 'systemd', name: 'unknown', unit: 'no-such.service' },
      { kind: 'systemd', name: 'system', unit: null },
    ]);
    assert.is(running!.ok, true, running!.detail);
    assert.is(broken!.ok, false, 'a failed unit fails its probe');
    assert.is(unknown!.ok, false, 'a unit that does not exist fails its probe');
    assert.is(whole!.ok, false, 'with broken.service failed, the whole-system probe fails');

    // Once nothing is failed any more, the whole-system probe passes.
    assert.is(inside(systemdPid, ['systemctl', 'reset-failed', 'broken.service']).status, 0);
    const [after] = run([{ kind: 'systemd', name: 'system', unit: null }]);
    assert.is(after!.ok, true, after!.detail);
  } finally {
    // SIGRTMIN+14 is systemd's "power off now" (SIGTERM would only make it re-execute); node has no
    // name for real-time signals, kill(1) has.
    if (systemdPid > 0) spawnSync('kill', ['-s', 'RTMIN+14', String(systemdPid)]);
    if (unshare?.pid && unshare.exitCode === null) {
      const exited = new Promise((r) => unshare!.once('exit', r));
      const force = setTimeout(() => unshare!.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(force);
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
