// `nixfleet trust init --operator-key`, `nixfleet control ...` and `nixfleet refresh` binding the
// controls, through the same dispatcher as the binary (in-process).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cli.ts';
import { b64, newSigningKey } from '../../protocol/keys.ts';
import { diskFetch } from '../../protocol/disk-tree.ts';
import { initialClientState } from '../../protocol/verify/state.ts';
import { updateTrust } from '../../protocol/verify/update-trust.ts';
import { readRoot } from '../../protocol/trust-root.ts';

const NOW = '2030-01-15T12:00:00Z';
const at = (s: number) => new Date(Date.parse(NOW) + s * 1000).toISOString().replace('.000Z', 'Z');
let dir = '';
test.after.each(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = '';
});

async function ok(...argv: string[]) {
  const r = await runCli(...argv);
  assert.is(r.code, 0, `nixfleet ${argv.join(' ')}\n${r.err}${r.out}`);
  return r;
}

async function setup() {
  dir = mkdtempSync(join(tmpdir(), 'nf-cli-control-'));
  for (const k of ['root', 'release', 'op1', 'op2'])
    await ok(
      'keygen',
      '--name',
      k,
      '--out',
      join(dir, `${k}.key`),
      '--public',
      join(dir, `${k}.pub`),
    );
  await ok(
    'trust',
    'init',
    '--fleet',
    'ops',
    '--root-key',
    join(dir, 'root.key'),
    '--threshold',
    '1',
    '--release-key',
    join(dir, 'release.pub'),
    '--operator-key',
    join(dir, 'op1.pub'),
    '--operator-key',
    join(dir, 'op2.pub'),
    '--operator-threshold',
    '2',
    '--expires-days',
    '365',
    '--out',
    join(dir, 'trust'),
    '--now',
    at(-3600),
  );
  const host = (channel: string) => ({
    system: 'x86_64-linux',
    channel,
    target: '/nix/store/11111111111111111111111111111111-nixos-system-a',
    hostKey: b64(newSigningKey('h').publicKey),
  });
  const timing = {
    freshnessSeconds: 3600,
    signingIntervalSeconds: 600,
    confirmDeadlineSeconds: 60,
    heartbeatSeconds: 30,
    offlineWindowSeconds: 600,
  };
  writeFileSync(
    join(dir, 'fleet.json'),
    JSON.stringify({
      fleet: 'ops',
      hosts: { 'web-1': host('prod'), 'web-2': host('prod') },
      channels: { prod: { policy: 'p', ...timing } },
      policies: { p: { strategy: 'all-at-once', waves: [] } },
    }),
  );
  await ok(
    'publish',
    join(dir, 'fleet.json'),
    '--tree',
    join(dir, 'tree'),
    '--release-key',
    join(dir, 'release.key'),
    '--trust',
    join(dir, 'trust'),
    '--no-cache-check',
    '--now',
    NOW,
  );
  const root = join(dir, 'trust', 'root', '1.json');
  const base = ['--tree', join(dir, 'tree'), '--root', root];
  const ops = ['--operator-key', join(dir, 'op1.key'), '--operator-key', join(dir, 'op2.key')];
  return { base, ops, root };
}

test('control pause -> show (pending) -> refresh binds it -> show (in force); agents verify it', async () => {
  const { base, ops, root } = await setup();
  const trust = JSON.parse(
    (await ok('control', 'show', ...base, '--now', at(10), '--json')).out,
  ) as { operatorRole: { threshold: number } };
  assert.is(trust.operatorRole.threshold, 2);
  const p = JSON.parse(
    (
      await ok(
        'control',
        'pause',
        '--channel',
        'prod',
        '--reason',
        'incident 7',
        ...base,
        ...ops,
        '--now',
        at(20),
        '--json',
      )
    ).out,
  ) as { version: number; file: string; boundVersion: number | null };
  assert.equal([p.version, p.file, p.boundVersion], [1, 'controls-1.json', null]);
  const pending = JSON.parse(
    (await ok('control', 'show', ...base, '--now', at(30), '--json')).out,
  ) as { bound: unknown; pending: { version: number } };
  assert.is(pending.bound, null);
  assert.is(pending.pending.version, 1);
  const human = await ok('control', 'show', ...base, '--now', at(30));
  assert.match(human.out, /not yet bound/);
  await ok(
    'refresh',
    '--tree',
    join(dir, 'tree'),
    '--release-key',
    join(dir, 'release.key'),
    '--now',
    at(40),
  );
  const shown = await ok('control', 'show', ...base, '--now', at(50));
  assert.match(shown.out, /paused: channel prod since .* \(incident 7\)/);
  assert.not.match(shown.out, /not yet bound/);
  const u = await updateTrust({
    fetch: diskFetch(join(dir, 'tree')),
    state: initialClientState(readRoot(readFileSync(root), root)),
    now: Date.parse(at(60)),
  });
  assert.equal(
    u.controls!.signed.paused.map((x) => x.channel),
    ['prod'],
  );
  // The operator read side (status, trace, dashboard) evaluates the fleet under the same controls.
  const { loadFleetState } = await import('../../read-side/load.ts');
  const state = await loadFleetState(join(dir, 'tree'), readRoot(readFileSync(root), root), {
    now: Date.parse(at(60)),
  });
  assert.equal(
    state.input.controls?.paused.map((x) => x.channel),
    ['prod'],
  );

  // resume-halted and retry default to the current rollout id; clear-quarantine fleet-wide; resume.
  await ok('control', 'resume-halted', '--channel', 'prod', ...base, ...ops, '--now', at(70));
  await ok('control', 'retry', '--host', 'web-2', ...base, ...ops, '--now', at(80));
  await ok('control', 'clear-quarantine', ...base, ...ops, '--now', at(90));
  const r = JSON.parse(
    (
      await ok(
        'control',
        'resume',
        '--channel',
        'prod',
        ...base,
        ...ops,
        '--now',
        at(100),
        '--json',
      )
    ).out,
  ) as {
    version: number;
    controls: {
      paused: unknown[];
      resumedHalts: { rolloutId: string }[];
      retries: { host: string }[];
      quarantineClears: { host: null }[];
    };
  };
  assert.is(r.version, 5);
  assert.equal(r.controls.paused, []);
  assert.is(r.controls.resumedHalts.length, 1);
  assert.equal(
    r.controls.retries.map((x) => x.host),
    ['web-2'],
  );
  assert.is(r.controls.quarantineClears[0]!.host, null);
});

test('control refusals: below the operator threshold or with the release key -> 1, nothing written; unknown names -> 2', async () => {
  const { base, ops } = await setup();
  const one = await runCli(
    'control',
    'pause',
    '--channel',
    'prod',
    ...base,
    '--operator-key',
    join(dir, 'op1.key'),
    '--now',
    at(20),
  );
  assert.is(one.code, 1, one.err);
  assert.match(one.err, /ThresholdNotMet/);
  const ci = await runCli(
    'control',
    'pause',
    '--channel',
    'prod',
    ...base,
    '--operator-key',
    join(dir, 'release.key'),
    '--operator-key',
    join(dir, 'op1.key'),
    '--now',
    at(20),
  );
  assert.is(ci.code, 1, ci.err);
  assert.not.ok(existsSync(join(dir, 'tree', 'controls-1.json')));
  const unknown = await runCli(
    'control',
    'pause',
    '--channel',
    'nope',
    ...base,
    ...ops,
    '--now',
    at(20),
  );
  assert.is(unknown.code, 2);
  assert.match(unknown.err, /no channel "nope"/);
  const host = await runCli(
    'control',
    'retry',
    '--host',
    'web-9',
    ...base,
    ...ops,
    '--now',
    at(20),
  );
  assert.is(host.code, 2);
  const target = await runCli(
    'control',
    'clear-quarantine',
    '--target',
    '/tmp/x',
    ...base,
    ...ops,
    '--now',
    at(20),
  );
  assert.is(target.code, 2);
  assert.match(target.err, /--target/);
});

test('trust rotate keeps the operator role unless told otherwise; --no-operator-keys drops it', async () => {
  await setup();
  const rot = JSON.parse(
    (
      await ok(
        'trust',
        'rotate',
        '--trust',
        join(dir, 'trust'),
        '--old-root-key',
        join(dir, 'root.key'),
        '--root-key',
        join(dir, 'root.key'),
        '--out',
        join(dir, 'trust'),
        '--now',
        at(10),
        '--json',
      )
    ).out,
  ) as { root: { operatorKeys: unknown[]; operatorThreshold: number } };
  assert.is(rot.root.operatorKeys.length, 2);
  assert.is(rot.root.operatorThreshold, 2);
  const dropped = JSON.parse(
    (
      await ok(
        'trust',
        'rotate',
        '--trust',
        join(dir, 'trust'),
        '--old-root-key',
        join(dir, 'root.key'),
        '--root-key',
        join(dir, 'root.key'),
        '--no-operator-keys',
        '--out',
        join(dir, 'trust'),
        '--now',
        at(20),
        '--json',
      )
    ).out,
  ) as { root: Record<string, unknown> };
  assert.not.ok('operatorKeys' in dropped.root);
});

test.run();
