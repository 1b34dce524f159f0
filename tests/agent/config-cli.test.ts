// A wrong or unreadable agent config is a usage error (exit 2) naming the file and the field, never
// "refused" (exit 1 is reserved for a served tree that failed verification).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'nf-agent-config-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const VALID = {
  controlPlaneUrl: 'https://cp.example.org:8443/',
  caFile: 'ca.crt',
  certFile: 'host.crt',
  keyFile: 'host.key',
  host: 'web-01',
  hostKeyFile: 'host.nfkey',
  trustRootFile: 'root.json',
  stateDir: 'state',
  activator: { kind: 'simulated', initialPath: '/nix/store/00000000000000000000000000000000-x' },
};

for (const [name, content, expected] of [
  [
    'an http:// control plane URL',
    JSON.stringify({ ...VALID, controlPlaneUrl: 'http://cp.example.org/' }),
    /controlPlaneUrl.*https:\/\//,
  ],
  ['an unknown field', JSON.stringify({ ...VALID, colour: 'blue' }), /colour/],
  ['invalid JSON', '{"controlPlaneUrl": ', /agent config .*agent\.json/],
] as const) {
  test(`agent --once with ${name}: exit 2, naming the file and what is wrong`, async () => {
    const file = join(dir, 'agent.json');
    writeFileSync(file, content);
    const r = await runCli('agent', '--config', file, '--once');
    assert.is(r.code, 2, r.err);
    assert.ok(r.err.includes(file), r.err);
    assert.match(r.err, expected);
    assert.not.match(r.err, /refused/i);
  });
}

test('agent --once with a config file that does not exist: exit 2 naming it', async () => {
  const r = await runCli('agent', '--config', join(dir, 'missing.json'), '--once');
  assert.is(r.code, 2);
  assert.match(r.err, /missing\.json: cannot read it \(ENOENT\)/);
});

test.run();
