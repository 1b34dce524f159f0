// The README's main job: `nixfleet demo` must run end to end on a fresh machine (no nginx, no Nix),
// verify its own tree, show one host rolled back and quarantined, and leave no process behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTool } from '../support/skip.ts';

const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
/** Inherited by everything the demo starts, so its leftovers are told apart from other test processes. */
const RUN_TAG = { name: 'NIXFLEET_DEMO_TEST_RUN', value: `${process.pid}-${Date.now()}` };

function run(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [RUN_TAG.name]: RUN_TAG.value },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`demo did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, pid: child.pid! });
    });
  });
}

/**
 * Processes the demo started that are still running (the demo's agents run in-process, but check):
 * found by the tag in their environment, as other test processes of this checkout may run meanwhile.
 */
function leftoverProcesses(exclude: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === exclude || Number(entry) === process.pid)
      continue;
    try {
      if (
        readFileSync(`/proc/${entry}/environ`, 'utf8')
          .split('\0')
          .includes(`${RUN_TAG.name}=${RUN_TAG.value}`)
      )
        out.push(Number(entry));
    } catch {
      /* exited meanwhile, or not ours to read */
    }
  }
  return out;
}

test('nixfleet demo: converges 11 hosts, rolls back + quarantines the injected one, verifies, leaves no process', async () => {
  if (!requireTool('openssl', 'the demo PKI')) return;
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-demo-'));
  try {
    const r = await run(['demo', '--dir', dir, '--json'], 200_000);
    assert.is(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as {
      ok: boolean;
      converged: string[];
      rolledBack: { host: string }[];
      failingHost: string;
      channels: { state: string }[];
    };
    assert.ok(summary.ok);
    assert.is(summary.converged.length, 11);
    assert.equal(
      summary.rolledBack.map((x) => x.host),
      [summary.failingHost],
    );
    assert.ok(summary.channels.every((c) => c.state === 'complete'));
    // The tree it leaves behind is the auditor's to check.
    const v = await run(
      ['verify', join(dir, 'tree'), '--root', join(dir, 'trust', 'root', '1.json'), '--json'],
      60_000,
    );
    assert.is(v.code, 0, v.stderr);
    assert.ok(existsSync(join(dir, 'tree', 'acks', 'hosts')));
    assert.equal(leftoverProcesses(r.pid), [], 'no demo process is left running');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
