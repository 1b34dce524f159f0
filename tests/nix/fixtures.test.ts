// Nix and TypeScript agree on every fleet fixture. Golden: `mkFleet` accepts the fleet, and its output
// (defaults applied) run through the TypeScript validator resolves to exactly the committed
// expected.json; the Nix resolver's own waves and budgets equal it too. Negative: evaluating `mkFleet`
// fails, and the one error lists every expected "path: message" line, except what Nix cannot see
// (NIX_BLIND below, each with its reason).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { validateFleet } from '../../publisher/validate.ts';
import { describeResolution, type ResolutionView } from '../../publisher/describe.ts';
import { FIXTURES, evalError, evalJson, nixSandbox, nixString } from './nix-env.ts';

/**
 * Expected lines Nix cannot produce, per negative fixture. When every line of a fixture is listed, the
 * fixture must instead be ACCEPTED by Nix (proving the override is still needed and nothing else is wrong).
 */
const NIX_BLIND: Record<string, { lines: string[]; why: string }> = {
  'duplicate-json-key': {
    lines: ['duplicate key "fleet"'],
    why: 'builtins.fromJSON keeps the last duplicate key; duplicate keys are a JSON-level concern, refused by the strict JSON intake of nixfleet publish/validate',
  },
};

const goldenNames = readdirSync(join(FIXTURES, 'golden')).sort();
const negativeNames = readdirSync(join(FIXTURES, 'negative'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -5))
  .sort();

const fleetExpr = (file: string) => `(builtins.fromJSON (builtins.readFile ${nixString(file)}))`;

test('golden fleets: Nix mkFleet output resolves in TypeScript to exactly expected.json, and Nix resolves the same waves', async () => {
  if (!requireTool('nix-instantiate', 'Nix/TypeScript cross-check of the fleet fixtures')) return;
  const sandbox = nixSandbox();
  try {
    // One nix process for every golden fleet.
    const files = goldenNames.map((n) => join(FIXTURES, 'golden', n, 'fleet.json'));
    const out = (await evalJson(
      sandbox,
      `map (f: let input = builtins.fromJSON (builtins.readFile f); in { fleet = lib.mkFleet input; resolution = lib.resolveFleet input; }) [ ${files.map(nixString).join(' ')} ]`,
    )) as {
      fleet: unknown;
      resolution: {
        channels: Record<
          string,
          { waves: { index: number; membership: string; hosts: string[] }[]; unassigned: string[] }
        >;
        budgets: { id: string; maxInFlight: number; hosts: string[] }[];
      };
    }[];
    assert.is(out.length, goldenNames.length);
    goldenNames.forEach((name, i) => {
      const { fleet, resolution } = out[i]!;
      const r = validateFleet(fleet);
      if (!r.ok)
        throw new Error(
          `${name}: the TypeScript validator refused mkFleet's output:\n${r.errors.join('\n')}`,
        );
      const actual = JSON.stringify(describeResolution(r), null, 2) + '\n';
      assert.fixture(
        actual,
        readFileSync(join(FIXTURES, 'golden', name, 'expected.json'), 'utf8'),
        `${name}: TS resolution of the Nix output`,
      );
      const expected = JSON.parse(actual) as ResolutionView;
      for (const [channel, c] of Object.entries(expected.channels)) {
        const nixChannel = resolution.channels[channel];
        assert.ok(nixChannel, `${name}: Nix did not resolve channel ${channel}`);
        assert.equal(nixChannel.unassigned, [], `${name}/${channel}: unassigned hosts`);
        assert.equal(
          nixChannel.waves.map((w) => ({
            index: w.index,
            membership: w.membership,
            hosts: w.hosts,
          })),
          c.waves.map((w) => ({ index: w.index, membership: w.membership, hosts: w.hosts })),
          `${name}/${channel}: Nix waves`,
        );
      }
      assert.equal(
        Object.keys(resolution.channels).sort(),
        Object.keys(expected.channels).sort(),
        `${name}: channels`,
      );
      assert.equal(
        resolution.budgets.map((b) => [b.id, b.maxInFlight, b.hosts]),
        expected.budgets.map((b) => [b.id, b.maxInFlight, b.hosts]),
        `${name}: budgets`,
      );
    });
  } finally {
    sandbox.cleanup();
  }
});

test('golden fleets: mkFleet output is the input with defaults applied (TypeScript parse of the input)', async () => {
  if (!requireTool('nix-instantiate', 'Nix/TypeScript cross-check of the fleet fixtures')) return;
  const sandbox = nixSandbox();
  try {
    const files = goldenNames.map((n) => join(FIXTURES, 'golden', n, 'fleet.json'));
    const out = (await evalJson(
      sandbox,
      `map (f: lib.mkFleet (builtins.fromJSON (builtins.readFile f))) [ ${files.map(nixString).join(' ')} ]`,
    )) as unknown[];
    goldenNames.forEach((name, i) => {
      const ts = validateFleet(JSON.parse(readFileSync(files[i]!, 'utf8')));
      if (!ts.ok) throw new Error(`${name}: refused by TypeScript`);
      assert.equal(
        out[i],
        JSON.parse(JSON.stringify(ts.fleet)),
        `${name}: Nix defaults differ from zod's`,
      );
    });
  } finally {
    sandbox.cleanup();
  }
});

/** Runs `fn` over `items` with at most `limit` running at once (each is a nix process). */
async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

test('negative fleets: evaluating mkFleet fails with one message listing every expected violation', async () => {
  if (!requireTool('nix-instantiate', 'Nix/TypeScript cross-check of the fleet fixtures')) return;
  const problems: string[] = [];
  const sandbox = nixSandbox();
  try {
    await inParallel(negativeNames, 4, async (name) => {
      const expected = readFileSync(join(FIXTURES, 'negative', `${name}.expect.txt`), 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
      const blind = NIX_BLIND[name]?.lines ?? [];
      for (const b of blind)
        if (!expected.includes(b))
          problems.push(`${name}: NIX_BLIND lists "${b}", which the fixture no longer expects`);
      const visible = expected.filter((l) => !blind.includes(l));
      const expr = `lib.mkFleet ${fleetExpr(join(FIXTURES, 'negative', `${name}.json`))}`;
      if (visible.length === 0) {
        await evalJson(sandbox, expr).catch((e: Error) =>
          problems.push(
            `${name}: every expected line is NIX_BLIND, so Nix must accept it, but: ${e.message}`,
          ),
        );
        return;
      }
      let message: string;
      try {
        message = await evalError(sandbox, expr);
      } catch (e) {
        problems.push(`${name}: ${(e as Error).message}`);
        return;
      }
      if (!/mkFleet: the fleet is invalid \(\d+ violations?\)/.test(message))
        problems.push(`${name}: not mkFleet's violation report:\n${message}`);
      for (const want of visible)
        if (!message.includes(want)) problems.push(`${name}: missing "${want}" in:\n${message}`);
    });
  } finally {
    sandbox.cleanup();
  }
  assert.ok(negativeNames.length >= 12, `only ${negativeNames.length} negative fixtures`);
  assert.equal(problems, []);
});

test.run();
