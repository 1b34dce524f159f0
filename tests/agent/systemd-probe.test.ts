// The systemd health probe against a real systemd: a private one, PID 1 of its own PID and mount
// namespace (../shared TOOLING.md, "systemd"), with one running and one failed unit. The probe code runs
// inside that namespace, where `systemctl` reaches it. Issue 9.5: a systemd probe forced to always pass
// must fail a test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProbeResult } from '../../agent/probes/probe.ts';
import {
  canRunPrivateSystemd,
  startPrivateSystemd,
  until,
  type PrivateSystemd,
} from '../support/private-systemd.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RUN_PROBES = fileURLToPath(new URL('../support/run-probes.ts', import.meta.url));
const UNITS: Record<string, string> = {
  'running.service': '[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/sleep infinity\n',
  'broken.service':
    '[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nExecStart=/bin/false\n',
  'probe-test.target': '[Unit]\nDefaultDependencies=no\nWants=running.service broken.service\n',
};

test('systemd probe: a running unit passes; a failed or unknown unit fails; no unit = no failed units', async () => {
  if (!canRunPrivateSystemd()) return;
  const dir = mkdtempSync(join(tmpdir(), 'nf-sd-probe-'));
  let sd: PrivateSystemd | undefined;
  try {
    sd = await startPrivateSystemd(dir, UNITS, 'probe-test.target');
    const systemd = sd;
    // --wd: nsenter would otherwise start in /, where `--import tsx` does not resolve.
    const inside = (argv: string[]) => systemd.inside(argv, ROOT);
    await until(
      'running.service to run',
      () => inside(['systemctl', 'is-active', 'running.service']).stdout.trim() === 'active',
    );
    await until(
      'broken.service to fail',
      () => inside(['systemctl', 'is-failed', 'broken.service']).status === 0,
    );

    const run = (probes: object[]): ProbeResult[] => {
      const r = inside([process.execPath, '--import', 'tsx', RUN_PROBES, JSON.stringify(probes)]);
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
    assert.is(inside(['systemctl', 'reset-failed', 'broken.service']).status, 0);
    const [after] = run([{ kind: 'systemd', name: 'system', unit: null }]);
    assert.is(after!.ok, true, after!.detail);
  } finally {
    await sd?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
