// parseWith (protocol/schemas/parse.ts), the one zod intake: a schema parses without zod's JIT for its
// first JIT_AFTER values and with it after; the results and the Malformed messages are the same on
// both sides of that switch, for valid and invalid documents (a real schema: the ack's).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { z } from 'zod';
import { Ack } from '../../protocol/schemas/ack.ts';
import { JIT_AFTER, parseWith } from '../../protocol/schemas/parse.ts';

const valid = {
  type: 'ack',
  schemaVersion: 1,
  fleet: 'f',
  host: 'web-1',
  seq: 2,
  prev: `sha256:${'a'.repeat(64)}`,
  time: '2030-01-01T00:00:00Z',
  kind: 'heartbeat',
  releaseVersion: 1,
  rolloutId: `sha256:${'b'.repeat(64)}`,
  target: `/nix/store/${'c'.repeat(32)}-nixos-system-web-1`,
  current: `/nix/store/${'c'.repeat(32)}-nixos-system-web-1`,
  healthySince: '2030-01-01T00:00:00Z',
  probes: [],
  reason: null,
};
const invalid = [
  { ...valid, seq: 0 },
  { ...valid, time: '2030-02-30T00:00:00Z' },
  { ...valid, extra: true },
  { ...valid, kind: 'nope', host: 'Web_1' },
];

/** What parseWith gives: the value, or the Malformed message. */
function outcome(schema: z.ZodType, value: unknown): unknown {
  try {
    return { ok: parseWith(schema, value, 'acks/hosts/web-1.json') };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

test('the same values and messages before and after a schema switches to the JIT', () => {
  // A copy of the ack schema of its own (the switch counts per schema object).
  const schema = Ack.extend({});
  const before = [valid, ...invalid].map((v) => outcome(schema, v));
  // Enough parses to be well past the switch, alternating valid and invalid documents.
  for (let i = 0; i < 2 * JIT_AFTER; i++) outcome(schema, i % 2 ? valid : invalid[0]);
  const after = [valid, ...invalid].map((v) => outcome(schema, v));
  assert.equal(after, before);
  assert.equal(before[0], { ok: valid });
  for (const o of before.slice(1))
    assert.match((o as { error: string }).error, 'acks/hosts/web-1.json');
});

test.run();
