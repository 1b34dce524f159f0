// Golden fleets: the resolved output (waves per channel, budgets, rollout ids, warnings) must equal the
// committed expected.json exactly (UPDATE_GOLDEN=1 rewrites them; review the diff). Negative fleets: each
// must be refused with every expected message of <name>.expect.txt (one substring per line).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateFleetBytes } from '../../publisher/validate.ts';
import { describeResolution } from '../../publisher/describe.ts';
import { isVerificationError } from '../../protocol/errors.ts';

const dir = fileURLToPath(new URL('../fixtures/fleets/', import.meta.url));
const goldenNames = readdirSync(join(dir, 'golden')).sort();
const negativeNames = readdirSync(join(dir, 'negative'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -5))
  .sort();

test('there are at least 8 golden and 12 negative fleets', () => {
  assert.ok(goldenNames.length >= 8, `${goldenNames.length} golden`);
  assert.ok(negativeNames.length >= 12, `${negativeNames.length} negative`);
});

for (const name of goldenNames) {
  test(`golden ${name}`, () => {
    const fleetFile = join(dir, 'golden', name, 'fleet.json');
    const r = validateFleetBytes(readFileSync(fleetFile), fleetFile);
    if (!r.ok) throw new Error(`refused:\n${r.errors.join('\n')}`);
    const actual = JSON.stringify(describeResolution(r), null, 2) + '\n';
    const expectedFile = join(dir, 'golden', name, 'expected.json');
    if (process.env.UPDATE_GOLDEN === '1' || !existsSync(expectedFile))
      writeFileSync(expectedFile, actual);
    assert.fixture(actual, readFileSync(expectedFile, 'utf8'));
  });
}

function refusal(file: string): string {
  try {
    const r = validateFleetBytes(readFileSync(file), file);
    if (r.ok) return '';
    return r.errors.join('\n');
  } catch (e) {
    // Strict JSON intake (duplicate keys, ...) refuses before validation.
    if (isVerificationError(e)) return e.message;
    throw e;
  }
}

for (const name of negativeNames) {
  test(`negative ${name}`, () => {
    const message = refusal(join(dir, 'negative', `${name}.json`));
    assert.ok(message !== '', 'the fleet was accepted');
    const expected = readFileSync(join(dir, 'negative', `${name}.expect.txt`), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    assert.ok(expected.length > 0, 'no expectations');
    for (const want of expected)
      assert.ok(message.includes(want), `missing "${want}" in:\n${message}`);
  });
}

test.run();
