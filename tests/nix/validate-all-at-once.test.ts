// Issue 11's example, end to end on both sides: a fleet with a missing target, a misspelt channel, a
// duplicate host key and a host-edge cycle is refused by `nixfleet validate` AND by Nix mkFleet with all
// four violations in one run, in the same words (Nix also names the other host of the duplicate key:
// the one documented difference, see docs/architecture.md "What Nix cannot check").
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { runCli } from '../support/cli.ts';
import { FIXTURES, evalError, nixSandbox, nixString } from './nix-env.ts';

const FLEET = join(FIXTURES, 'negative', 'four-violations-in-one-run.json');
const EXPECTED = [
  'hosts.web-01.target: required',
  'hosts.web-02.channel: unknown channel "stabel" (did you mean "stable"?)',
  'hosts.web-03.hostKey: the same host key is used by hosts.web-01',
  'hostEdges: cycle web-02 -> web-03 -> web-02',
];
/** The mirror of TypeScript's duplicate-key line, which Nix (sorted attribute sets) adds. */
const NIX_MIRROR = 'hosts.web-01.hostKey: the same host key is used by hosts.web-03';

/** The "  - path: message" lines of a report (Nix indents its error message further). */
const violationLines = (text: string): string[] =>
  text.split('\n').flatMap((l) => /^\s*- (.*)$/.exec(l)?.slice(1) ?? []);

test('nixfleet validate reports all four violations of the issue example in one run', async () => {
  const r = await runCli('validate', FLEET);
  assert.is(r.code, 1, r.err);
  assert.match(r.err, /the fleet is invalid \(4 violations\)/);
  assert.equal(violationLines(r.err), EXPECTED);
});

test('mkFleet reports the same four lines (plus the mirrored duplicate-key line) in one evaluation error', async () => {
  if (!requireTool('nix-instantiate', 'mkFleet reporting every violation')) return;
  const sandbox = nixSandbox();
  try {
    const message = await evalError(
      sandbox,
      `lib.mkFleet (builtins.fromJSON (builtins.readFile ${nixString(FLEET)}))`,
    );
    assert.match(message, /mkFleet: the fleet is invalid \(5 violations\)/);
    assert.equal(violationLines(message).sort(), [...EXPECTED, NIX_MIRROR].sort());
  } finally {
    sandbox.cleanup();
  }
});

test.run();
