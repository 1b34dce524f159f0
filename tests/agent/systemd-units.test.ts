import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTool } from '../support/skip.ts';

const UNITS = fileURLToPath(new URL('../../agent/systemd/', import.meta.url));

function verify(dir: string, files: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(
    'systemd-analyze',
    ['verify', '--man=no', ...files.map((f) => join(dir, f))],
    { encoding: 'utf8', timeout: 30_000 },
  );
  return { status: r.status, stderr: r.stderr };
}

test('agent service and timer pass systemd-analyze verify with no output at all', () => {
  if (!requireTool('systemd-analyze', 'unit lint')) return;
  const dir = mkdtempSync(join(tmpdir(), 'nf-units-'));
  try {
    for (const f of ['nixfleet-agent.service', 'nixfleet-agent.timer'])
      copyFileSync(join(UNITS, f), join(dir, f));
    const r = verify(dir, ['nixfleet-agent.service', 'nixfleet-agent.timer']);
    assert.is(r.stderr.trim(), '', r.stderr);
    assert.is(r.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the lint catches a broken unit (the check can fail)', () => {
  if (!requireTool('systemd-analyze', 'unit lint')) return;
  const dir = mkdtempSync(join(tmpdir(), 'nf-units-'));
  try {
    const text = readFileSync(join(UNITS, 'nixfleet-agent.service'), 'utf8').replace(
      'TimeoutStartSec=',
      'TimeoutStartSecs=',
    );
    writeFileSync(join(dir, 'nixfleet-agent.service'), text);
    const r = verify(dir, ['nixfleet-agent.service']);
    assert.match(r.stderr, /TimeoutStartSecs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the service runs exactly one agent cycle with --once', () => {
  const text = readFileSync(join(UNITS, 'nixfleet-agent.service'), 'utf8');
  assert.match(text, /^Type=oneshot$/m);
  assert.match(text, /^ExecStart=.* agent --config \S+ --once$/m);
  assert.match(
    readFileSync(join(UNITS, 'nixfleet-agent.timer'), 'utf8'),
    /^Unit=nixfleet-agent\.service$/m,
  );
  // Persistent= only applies to OnCalendar= timers; on a monotonic timer it silently does nothing.
  const timer = readFileSync(join(UNITS, 'nixfleet-agent.timer'), 'utf8');
  assert.ok(
    !/^Persistent=/m.test(timer) || /^OnCalendar=/m.test(timer),
    'Persistent= without OnCalendar= has no effect',
  );
});

test.run();
