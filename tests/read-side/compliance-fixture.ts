// A published fixture whose ch-0 hosts carry signed compliance (enforce, framework cis: one static and
// two runtime controls), and host a's ack chain carrying runtime evidence: passing, then failing aide
// with a hostile excerpt (a line break and an escape sequence).
import { join } from 'node:path';
import { sha256Digest } from '../../protocol/canonical.ts';
import type { HostCompliance, ControlEvidence } from '../../protocol/schemas/compliance.ts';
import { setCompliance } from '../support/compliance-tree.ts';
import {
  MIN,
  NOW,
  RELEASE_KEY,
  lifecycle,
  postAcks,
  publishedFixture,
  type AckStep,
  type Fixture,
} from './fixture.ts';

export const digestOf = (s: string) => sha256Digest(Buffer.from(s, 'utf8'));
export const HOSTILE_EXCERPT =
  'changed: /etc/passwd\nFAKE ROW ok \u001b[2J <img src=x onerror=alert(1)>';

export const COMPLIANCE: HostCompliance = {
  mode: 'enforce',
  frameworks: ['cis'],
  static: [
    {
      framework: 'cis',
      control: 'ssh-no-password',
      ok: true,
      evidence: 'services.openssh.settings.PasswordAuthentication = false',
    },
  ],
  runtime: [
    {
      framework: 'cis',
      control: 'aide',
      argv: ['/run/current-system/sw/bin/aide', '--check'],
      expectExit: 0,
      timeoutMs: 30_000,
    },
    {
      framework: 'cis',
      control: 'auditd',
      argv: ['/bin/systemctl', 'is-active', 'auditd'],
      expectExit: 0,
      timeoutMs: 5_000,
    },
  ],
};
export const evidence = (control: string, ok: boolean, excerpt: string): ControlEvidence => ({
  framework: 'cis',
  control,
  ok,
  exitCode: ok ? 0 : 1,
  outputDigest: digestOf(excerpt),
  excerpt,
});

export interface Scene {
  fx: Fixture;
  /** ch-0's hosts: the first carries compliance, passing aide, then failing it. */
  a: string;
  b: string;
  bundle: string;
}

/** ch-0 hosts get compliance; host a's chain: lifecycle with evidence on activated/healthy, the latest failing. */
export function scene(label: string): Scene {
  const fx = publishedFixture(label);
  const [a] = fx.wave('ch-0', 0);
  const [b] = fx.wave('ch-0', 1);
  const ch0 = Object.keys(fx.plans['ch-0']!.hosts);
  setCompliance(fx.tree, RELEASE_KEY, Object.fromEntries(ch0.map((h) => [h, COMPLIANCE])));
  const steps: AckStep[] = lifecycle(NOW - 30 * MIN, NOW - 20 * MIN);
  steps[1] = { ...steps[1]!, evidence: [evidence('aide', true, 'AIDE found no differences')] };
  steps[2] = {
    ...steps[2]!,
    evidence: [
      evidence('aide', true, 'AIDE found no differences'),
      evidence('auditd', true, 'active'),
    ],
  };
  steps.push({
    kind: 'heartbeat',
    at: NOW - 10 * MIN,
    healthySince: NOW - 29 * MIN,
    evidence: [
      // A hostile excerpt: a line break and an escape sequence must not fake rows or reach the terminal raw.
      evidence('aide', false, HOSTILE_EXCERPT),
      evidence('auditd', true, 'active'),
    ],
  });
  postAcks(fx, a!, steps);
  postAcks(fx, b!, lifecycle(NOW - 20 * MIN, NOW - 12 * MIN));
  return { fx, a: a!, b: b!, bundle: join(fx.dir, 'evidence.json') };
}
