import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDir } from '../../agent/state-dir.ts';
import { createActivator, ActivatorConfig, ActivationError } from '../../agent/activators/index.ts';
import { parseGenerationOutput } from '../../agent/activators/command.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'nf-activator-'));
  dirs.push(d);
  return d;
}
test.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const T1 = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-system-1';
const T2 = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-system-2';
const T3 = '/nix/store/cccccccccccccccccccccccccccccccc-system-3';

test('simulated: switch returns the previous generation; rollback by number is idempotent', async () => {
  const a = createActivator(
    ActivatorConfig.parse({ kind: 'simulated', initialPath: T1, unhealthy: [T3], failSwitch: [] }),
    new StateDir(tmp()),
  );
  assert.equal(await a.currentGeneration(), { number: 1, path: T1 });
  assert.equal(await a.switch(T2), { number: 1, path: T1 });
  assert.equal(await a.currentGeneration(), { number: 2, path: T2 });
  assert.equal(await a.switch(T3), { number: 2, path: T2 });
  assert.equal((await a.selfCheck(T3))[0]?.ok, false);
  await a.rollback({ number: 1, path: T1 });
  await a.rollback({ number: 1, path: T1 });
  assert.equal(await a.currentGeneration(), { number: 1, path: T1 });
  // A new switch after a rollback gets a fresh number, never reuses one.
  assert.equal(await a.switch(T2), { number: 1, path: T1 });
  assert.equal((await a.currentGeneration()).number, 4);
  let err: unknown;
  try {
    await a.rollback({ number: 9, path: T1 });
  } catch (e) {
    err = e;
  }
  assert.instance(err, ActivationError);
});

test('simulated: injected switch failure leaves the current generation alone', async () => {
  const a = createActivator(
    ActivatorConfig.parse({ kind: 'simulated', initialPath: T1, failSwitch: [T2] }),
    new StateDir(tmp()),
  );
  try {
    await a.switch(T2);
    assert.unreachable('switch should fail');
  } catch (e) {
    assert.instance(e, ActivationError);
  }
  assert.equal(await a.currentGeneration(), { number: 1, path: T1 });
});

test('command activator drives shell scripts through environment variables', async () => {
  const d = tmp();
  const script = join(d, 'act.sh');
  // A tiny profile: "gens" lists "N PATH" lines, "cur" holds the current number.
  writeFileSync(
    script,
    `#!/bin/sh
set -e
cd ${d}
case "$1" in
  current) n=$(cat cur); grep "^$n " gens ;;
  switch) n=$(( $(wc -l < gens) + 1 )); echo "$n $NIXFLEET_TARGET" >> gens; echo $n > cur ;;
  rollback) grep -q "^$NIXFLEET_GENERATION $NIXFLEET_GENERATION_PATH$" gens; echo $NIXFLEET_GENERATION > cur; echo x >> rollbacks ;;
  inhibit) [ "$NIXFLEET_TARGET" = "${T3}" ] && echo kernel || true ;;
esac
`,
  );
  chmodSync(script, 0o755);
  writeFileSync(join(d, 'gens'), `1 ${T1}\n`);
  writeFileSync(join(d, 'cur'), '1\n');
  const a = createActivator(
    ActivatorConfig.parse({
      kind: 'command',
      switch: [script, 'switch'],
      rollback: [script, 'rollback'],
      current: [script, 'current'],
      inhibitors: [script, 'inhibit'],
    }),
    new StateDir(tmp()),
  );
  assert.equal(await a.currentGeneration(), { number: 1, path: T1 });
  assert.equal(await a.switch(T2), { number: 1, path: T1 });
  assert.equal(await a.currentGeneration(), { number: 2, path: T2 });
  assert.equal(await a.detectInhibitors(T3), ['kernel']);
  assert.equal(await a.detectInhibitors(T2), []);
  await a.rollback({ number: 1, path: T1 });
  await a.rollback({ number: 1, path: T1 });
  assert.equal(await a.currentGeneration(), { number: 1, path: T1 });
  const { readFileSync } = await import('node:fs');
  assert.is(readFileSync(join(d, 'rollbacks'), 'utf8'), 'x\n', 'second rollback was a no-op');
});

test('command activator: parses both output forms and rejects garbage', () => {
  assert.equal(parseGenerationOutput(`7 ${T1}\n`), { number: 7, path: T1 });
  assert.equal(parseGenerationOutput(JSON.stringify({ number: 7, path: T1 })), {
    number: 7,
    path: T1,
  });
  assert.throws(
    () => parseGenerationOutput('seven'),
    (e: Error) => e instanceof ActivationError,
  );
  assert.throws(
    () => parseGenerationOutput('{"number":7}'),
    (e: Error) => e instanceof ActivationError,
  );
});

test('command activator: a failing command is an ActivationError with its stderr', async () => {
  const a = createActivator(
    ActivatorConfig.parse({
      kind: 'command',
      switch: ['sh', '-c', 'echo boom >&2; exit 3'],
      rollback: ['true'],
      current: ['sh', '-c', `echo 1 ${T1}`],
    }),
    new StateDir(tmp()),
  );
  try {
    await a.switch(T2);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ActivationError);
    assert.match((e as Error).message, /exited with 3: boom/);
  }
});

test('config schema rejects unknown fields', () => {
  assert.not.ok(ActivatorConfig.safeParse({ kind: 'simulated', initialPath: T1, typo: 1 }).success);
  assert.not.ok(ActivatorConfig.safeParse({ kind: 'nix', typo: 1 }).success);
  assert.not.ok(ActivatorConfig.safeParse({ kind: 'nix', profile: 'relative/system' }).success);
  // Generation links the agent writes are GC roots only in Nix's profiles directory.
  for (const profile of ['/var/lib/system', '/nix/var/nix/profiles/../system']) {
    const r = ActivatorConfig.safeParse({ kind: 'nix', profile });
    assert.not.ok(r.success, profile);
    assert.match(
      JSON.stringify(r.error?.issues),
      /profile.*must lie under \/nix\/var\/nix\/profiles\//,
    );
  }
  assert.ok(
    ActivatorConfig.safeParse({ kind: 'nix', profile: '/nix/var/nix/profiles/per-user/x/system' })
      .success,
  );
});

test('nix activator config: the defaults a NixOS host runs with', () => {
  assert.equal(ActivatorConfig.parse({ kind: 'nix' }), {
    kind: 'nix',
    profile: '/nix/var/nix/profiles/system',
    currentSystem: '/run/current-system',
    nixBinDir: null,
    bootIdFile: '/proc/sys/kernel/random/boot_id',
    rebootCommand: ['systemctl', 'reboot'],
    timeoutMs: 1_800_000,
    sslCertFile: null,
  });
});

test.run();
