// Static compliance controls at publish (publisher/compliance.ts): an enforce channel with a failing
// control is refused naming host, channel, framework, control and evidence; a permissive one is signed,
// its results recorded in each host manifest, the channel's runtime controls in its plan.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { FleetInvalid } from '../../publisher/validate.ts';
import { verifyTreeDir } from '../../protocol/disk-tree.ts';
import { ChannelPlan, HostManifest, parseWith } from '../../protocol/index.ts';
import { publishInto, setupTrust, T0 } from './helpers.ts';

const fixture = join(
  import.meta.dirname,
  '../fixtures/fleets/golden/compliance-frameworks/fleet.json',
);
const fleetWith = (labMode: 'enforce' | 'permissive') => {
  const f = JSON.parse(readFileSync(fixture, 'utf8')) as {
    fleet: string;
    channels: Record<string, { compliance?: { mode: string } }>;
  };
  f.channels['lab']!.compliance!.mode = labMode;
  return f;
};
const signed = (tree: string, path: string) =>
  (JSON.parse(readFileSync(join(tree, path), 'utf8')) as { signed: unknown }).signed;

test('enforce: publish refuses a failing static control, naming host, channel, control and evidence', () => {
  const s = setupTrust('regulated');
  try {
    try {
      publishInto(s, fleetWith('enforce'));
      assert.unreachable('published');
    } catch (e) {
      assert.instance(e, FleetInvalid);
      assert.match(
        (e as Error).message,
        'hosts.lab-01: fails compliance control ssh-baseline/no-password-auth of channel lab (enforce): services.openssh.settings.PasswordAuthentication = true (expected false)',
      );
    }
    assert.not.ok(existsSync(join(s.treeDir, 'timestamp.json')), 'nothing was written');
  } finally {
    s.cleanup();
  }
});

test('permissive: signed with a warning; manifests record static results, plans the runtime controls', async () => {
  const s = setupTrust('regulated');
  try {
    const r = publishInto(s, fleetWith('permissive'));
    assert.ok(r.warnings.some((w) => w.includes('ssh-baseline/no-password-auth of channel lab')));
    assert.ok((await verifyTreeDir(s.treeDir, s.root, { now: T0 })).ok);
    const lab = parseWith(HostManifest, signed(s.treeDir, 'releases/1/hosts/lab-01.json'), 'lab');
    assert.equal(lab.compliance?.mode, 'permissive');
    assert.equal(
      lab.compliance?.static.map((x) => [x.control, x.ok]),
      [
        ['no-password-auth', false],
        ['root-login', false],
      ],
    );
    const pay = parseWith(HostManifest, signed(s.treeDir, 'releases/1/hosts/pay-01.json'), 'pay');
    assert.equal(pay.compliance?.frameworks, ['ssh-baseline', 'audit']);
    assert.ok(pay.compliance?.static.every((x) => x.ok));
    assert.equal(
      pay.compliance?.runtime.map((x) => `${x.framework}/${x.control}`),
      ['ssh-baseline/sshd-config-valid', 'audit/auditd-running'],
    );
    const plan = parseWith(
      ChannelPlan,
      signed(s.treeDir, 'releases/1/channels/payments.json'),
      'p',
    );
    assert.equal(plan.compliance, {
      mode: 'enforce',
      frameworks: pay.compliance!.frameworks,
      runtime: pay.compliance!.runtime,
    });
    const web = parseWith(HostManifest, signed(s.treeDir, 'releases/1/hosts/web-01.json'), 'web');
    assert.is(web.compliance, undefined, 'a channel without frameworks carries no compliance');
  } finally {
    s.cleanup();
  }
});

test.run();
