// Differential test: randomly corrupted fleets (from the golden fixtures) go through both validators,
// the TypeScript validateFleet and the Nix fleetViolations (one nix process for the whole batch), and
// the two must report the same set of violations: the schema's words, the cross-checks that still run on
// the well-typed parts of a broken fleet, and the "did you mean" suggestions. One known, documented
// difference is normalised first: duplicate host keys / machine ids (Nix names every colliding host; it
// must still contain TypeScript's line).
// NIXFLEET_DIFF_SEED=<n> reproduces a run; NIXFLEET_DIFF_CASES=<n> runs more cases.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { validateFleet } from '../../publisher/validate.ts';
import { FIXTURES, evalJson, nixSandbox, nixString } from './nix-env.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const SEED = Number(process.env.NIXFLEET_DIFF_SEED ?? 20260101);
const CASES = Number(process.env.NIXFLEET_DIFF_CASES ?? 80);

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const goldens = readdirSync(join(FIXTURES, 'golden'))
  .sort()
  .map((n) => JSON.parse(readFileSync(join(FIXTURES, 'golden', n, 'fleet.json'), 'utf8')) as Obj);

function mutator(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const obj = (v: Json | undefined): Obj => v as Obj;
  const hostNames = (f: Obj) => Object.keys(obj(f.hosts));
  const anyHost = (f: Obj) => obj(obj(f.hosts)[pick(hostNames(f))]);
  const anyChannel = (f: Obj) => obj(obj(f.channels)[pick(Object.keys(obj(f.channels)))]);
  const anyPolicy = (f: Obj) => obj(obj(f.policies)[pick(Object.keys(obj(f.policies)))]);
  const anyWave = (f: Obj) => {
    const waves = anyPolicy(f).waves as Json[];
    return waves.length ? obj(pick(waves)) : undefined;
  };
  const edges = (f: Obj, k: string) => (f[k] ??= []) as Json[];
  const weird: Json[] = [
    null,
    true,
    1.5,
    -1,
    0,
    101,
    '',
    'Bad Name',
    'x'.repeat(70),
    [],
    {},
    ['a'],
    { x: 1 },
    'stable',
    'web-01',
  ];

  const mutations: ((f: Obj) => void)[] = [
    (f) =>
      (anyHost(f).channel = pick([
        'nope',
        'stabel',
        'betta',
        'canry',
        ...Object.keys(obj(f.channels)),
        42 as Json,
      ])),
    (f) =>
      (anyHost(f).target = pick([
        '/nix/store/short-x',
        '/tmp/x',
        '/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x',
        7 as Json,
      ])),
    (f) => (anyHost(f).system = pick(['x86_64', 'X86-linux', 'aarch64-darwin'])),
    (f) => (anyHost(f).tags = pick([['-bad'], 'web', ['web', 'new'], [1]] as Json[])),
    (f) => (anyHost(f).machineId = pick(['0123456789abcdef0123456789abcdef', 'XYZ', null])),
    (f) =>
      (anyHost(f).hostKey = pick([
        'AAAA',
        'ssh-rsa AAAA',
        'ssh-ed25519 !!!',
        'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
        '7P///////////////////////////////////////38=',
        anyHost(f).hostKey!,
      ])),
    (f) => (anyHost(f)[pick(['chanel', 'extra', 'zz', 'tagz', 'sytem'])] = 1),
    (f) => delete anyHost(f)[pick(['system', 'channel', 'target', 'hostKey', 'tags'])],
    (f) => (obj(f.hosts)[pick(['NewHost', 'web-99', '-x'])] = structuredClone(anyHost(f))),
    (f) => (anyChannel(f).freshnessSeconds = pick([1, 60, 1799, 0, 1.5, '3600'] as Json[])),
    (f) =>
      (anyChannel(f).policy = pick(['nope', 'stagged', 'canery', ...Object.keys(obj(f.policies))])),
    (f) =>
      (anyChannel(f).maintenanceWindows = pick([
        [{ cron: 'x', durationMinutes: 0 }],
        [{ cron: '0 2 * * *', durationMinutes: 60, tz: 'x' }],
      ] as Json[])),
    (f) => (anyPolicy(f).strategy = pick(['canary', 'staged', 'all-at-once', 'yolo'])),
    (f) => (anyPolicy(f).onFailure = pick(['halt', 'rollback', 'rollback-and-halt'])),
    (f) =>
      (anyPolicy(f).waves = pick([
        [],
        [{ soakSeconds: 0 }],
        [{ soakSeconds: 0 }, { count: 1, soakSeconds: 0 }],
      ] as Json[])),
    (f) => {
      const w = anyWave(f);
      if (w) w[pick(['count', 'percent'])] = pick([0, 1, 2, 50, 100, 101] as Json[]);
    },
    (f) => {
      const w = anyWave(f);
      if (w)
        w.selector = pick([
          { tags: [] },
          { hosts: ['web-99'] },
          { channel: 'nightly' },
          { not: { all: true } },
          { and: [{ tagsAny: ['web'] }, { hosts: ['db-01'] }] },
          { all: false },
          { tags: ['web'], hosts: ['x'] },
        ] as Json[]);
    },
    (f) => {
      const w = anyWave(f);
      if (w)
        w.failureThreshold = pick([
          { count: -1 },
          { percent: 101 },
          { percent: 5 },
          { count: 1, percent: 1 },
          3,
        ] as Json[]);
    },
    (f) => {
      const w = anyWave(f);
      if (w) delete w.soakSeconds;
    },
    (f) =>
      (anyPolicy(f).probes = pick([
        [{ kind: 'ping' }],
        [{ kind: 'http', name: 'h', url: 'ftp://x', expectStatus: 99, timeoutMs: 0 }],
        [{ kind: 'systemd', name: 'u' }],
      ] as Json[])),
    (f) =>
      edges(f, 'hostEdges').push({
        before: pick([...hostNames(f), 'ghost']),
        after: pick([...hostNames(f), 'ghost']),
      }),
    (f) =>
      edges(f, 'channelEdges').push({
        before: pick([...Object.keys(obj(f.channels)), 'ghost']),
        after: pick([...Object.keys(obj(f.channels)), 'ghost']),
      }),
    (f) =>
      edges(f, 'disruptionBudgets').push(
        pick([
          { id: 'b', selector: { all: true }, maxInFlight: 0 },
          { id: 'b', selector: { all: true } },
          { id: 'b', selector: { tags: ['web'] }, maxInFlight: 1, maxInFlightPct: 10 },
          { id: 'c', selector: { hosts: ['ghost'] }, maxInFlightPct: 0 },
          { id: 'B!', selector: { all: true }, maxInFlight: 2 },
        ] as Json[]),
      ),
    (f) => {
      const revoked = (f.revoked ??= {}) as Obj;
      (revoked.closures ??= [] as Json[]) as Json[];
      (revoked.closures as Json[]).push({
        storePath: anyHost(f).target!,
        reason: 'bad',
        revokedAt: pick(['2026-02-30T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01']),
      });
    },
    (f) =>
      (f[
        pick([
          'fleet',
          'cacheUrl',
          'unknownTop',
          'fleets',
          'hosts',
          'channels',
          'policies',
          'hostEdges',
          'revoked',
        ])
      ] = pick(weird)),
    (f) => {
      // A host whose body is broken still exists: references to it are not "unknown".
      const hosts = obj(f.hosts);
      hosts[pick(hostNames(f))] = pick([
        7,
        [],
        { channel: 'stable' },
        { target: 1, channel: 'stabel' },
      ] as Json[]);
    },
    (f) =>
      edges(f, 'hostEdges').push(
        pick([{ before: 1, after: 'web-01' }, { before: 'web-01' }, 'x'] as Json[]),
      ),
    (f) => {
      const a = anyHost(f);
      const b = anyHost(f);
      if (rand() < 0.5) b.hostKey = a.hostKey!;
      else a.machineId = b.machineId = '0f4b2c7e9a1d4e6f8b3c5a7d9e1f2a4b';
    },
  ];
  return (f: Obj) => {
    const n = 1 + Math.floor(rand() * 3);
    for (let i = 0; i < n; i++) {
      try {
        pick(mutations)(f);
      } catch {
        // This mutation needs a part an earlier one already broke (e.g. `channels` is now a string).
      }
    }
  };
}

/** Removes the documented ordering differences so both sides can be compared as sets. */
function normalise(errors: string[]): string[] {
  return errors
    .filter((e) => !/: the same (host key|machine id) is used by hosts\./.test(e))
    .sort();
}

test(`random corruptions of the golden fleets: Nix and TypeScript report the same violations (seed ${SEED}, ${CASES} cases)`, async () => {
  if (!requireTool('nix-instantiate', 'Nix/TypeScript differential validation')) return;
  const rand = prng(SEED);
  const mutate = mutator(rand);
  const cases = Array.from({ length: CASES }, () => {
    const fleet = structuredClone(goldens[Math.floor(rand() * goldens.length)]!);
    mutate(fleet);
    return fleet;
  });
  const sandbox = nixSandbox();
  try {
    const file = join(sandbox.dir, 'cases.json');
    writeFileSync(file, JSON.stringify(cases));
    const nix = (await evalJson(
      sandbox,
      `map lib.fleetViolations (builtins.fromJSON (builtins.readFile ${nixString(file)}))`,
    )) as string[][];
    let invalid = 0;
    cases.forEach((fleet, i) => {
      const ts = validateFleet(fleet);
      const tsErrors = ts.ok ? [] : ts.errors;
      if (tsErrors.length > 0) invalid++;
      const nixErrors = nix[i]!;
      const context = `case ${i} (seed ${SEED}):\n${JSON.stringify(fleet).slice(0, 4000)}\nTS:  ${JSON.stringify(tsErrors, null, 1)}\nNix: ${JSON.stringify(nixErrors, null, 1)}`;
      assert.equal(normalise(nixErrors), normalise(tsErrors), context);
      for (const e of tsErrors.filter((x) =>
        /: the same (host key|machine id) is used by hosts\./.test(x),
      )) {
        const twoHostCollision =
          tsErrors.filter((x) => x.includes(e.slice(e.indexOf(':')))).length === 1;
        if (twoHostCollision) assert.ok(nixErrors.includes(e), `Nix lacks "${e}"\n${context}`);
      }
    });
    assert.ok(
      invalid > CASES / 2,
      `only ${invalid} of ${CASES} corrupted fleets were invalid: the mutations are too weak`,
    );
  } finally {
    sandbox.cleanup();
  }
});

test.run();
