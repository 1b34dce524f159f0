// Text from outside never drives the operator's terminal (cli/terminal.ts), and a closed stdout ends a
// command quietly. Through the real binary: an unknown key of an UNSIGNED timestamp.json that carries
// OSC/CSI escape sequences reaches the error message, and must arrive neutralised.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { neutralize } from '../../cli/terminal.ts';
import { TIMESTAMP_PATH } from '../../protocol/layout.ts';
import { runCli } from '../support/cli.ts';
import { labFleet, makeLab, NEW } from '../agent/lab-fleet.ts';

const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
const HOSTILE = '\x1b]0;pwned\x07\x1b[2J\x9b31m\u202egnp.exe';
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

test('neutralize: control characters become visible escapes; newline and tab stay; JSON keeps its meaning', () => {
  const out = neutralize(`a\tb\n${HOSTILE}`);
  assert.not.match(out, RAW_CONTROL);
  assert.ok(out.startsWith('a\tb\n\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u202egnp.exe'), out);
  const json = JSON.stringify({ reason: HOSTILE });
  assert.equal(JSON.parse(neutralize(json)), { reason: HOSTILE });
});

test('in-process: a command that prints outside text through the dispatcher is guarded, and the guard is removed afterwards', async () => {
  const r = await runCli('verify', `/nonexistent/${HOSTILE}`, '--root', `/nonexistent/${HOSTILE}`);
  assert.is(r.code, 2);
  assert.match(r.err, /\\u001b\]0;pwned/);
  assert.not.match(r.err + r.out, RAW_CONTROL);
});

test('the binary: an unsigned timestamp key with escape sequences is printed neutralised; a closed stdout ends quietly', async () => {
  const lab = makeLab(['h1']);
  try {
    lab.publish(labFleet(lab, { prod: { hosts: { h1: NEW }, waves: [{ soakSeconds: 0 }] } }));
    const args = ['verify', lab.treeDir, '--root', lab.rootFile];
    // A reader that went away (`| head -c 50`): our end of the pipe is closed before the command writes.
    const closed = await runWithClosedStdout([...args, '--json']);
    assert.is(closed.code, 0, closed.stderr);
    assert.is(closed.stderr, '', 'no EPIPE stack trace');

    const file = join(lab.treeDir, TIMESTAMP_PATH);
    const envelope = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    envelope[HOSTILE] = 1; // outside `signed`: no signature covers it
    writeFileSync(file, JSON.stringify(envelope));
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, /pwned/, 'the unknown key is named in the refusal');
    assert.not.match(r.stdout + r.stderr, RAW_CONTROL);
  } finally {
    rmSync(lab.opts.dir, { recursive: true, force: true });
  }
});

function runWithClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

test.run();
