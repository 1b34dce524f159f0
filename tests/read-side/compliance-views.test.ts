// Compliance in the operator views: `status --host` / `trace --host` show the host's controls from its
// verified manifest and its newest signed evidence (escaped), the fleet `status` a per-channel summary
// from the verified acks (no manifest verified), and `--problems` keeps hosts with failing controls.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { StatusReport } from '../../read-side/status.ts';
import type { TraceReport } from '../../read-side/trace.ts';
import { scene } from './compliance-fixture.ts';
import { NOW, cleanupTempDirs, run } from './fixture.ts';

test.after.each(cleanupTempDirs);

const NOW_ISO = isoTime(NOW);

test('status --host shows the host controls: static from the signed manifest, runtime from its newest evidence', async () => {
  const s = scene('views-host');
  const r = await run(
    'status',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    s.a,
    '--json',
  );
  assert.is(r.code, 0, r.err);
  const h = (JSON.parse(r.out) as StatusReport).hosts[0]!;
  assert.is(h.compliance!.mode, 'enforce');
  assert.equal(
    h.compliance!.controls.map((c) => [c.control, c.status]),
    [
      ['ssh-no-password', 'ok'],
      ['aide', 'failing'],
      ['auditd', 'ok'],
    ],
  );
  assert.equal(
    h.failingControls.map((f) => f.control),
    ['aide'],
  );
  const text = await run(
    'status',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    s.a,
  );
  assert.is(text.code, 0, text.err);
  assert.match(text.out, `compliance of ${s.a}: enforce, frameworks cis`);
  assert.match(
    text.out,
    /aide +runtime +FAILING .*\(ack seq 13, exit 1\) +changed: \/etc\/passwd\\nFAKE ROW ok \\u001b\[2J/,
  );
  assert.not.ok(text.out.includes('\u001b'));
  assert.not.ok(text.out.split('\n').some((l) => l.startsWith('FAKE ROW')));
  // A host whose channel names no framework: nothing to show, nothing failing.
  const other = Object.keys(s.fx.plans['ch-1']!.hosts)[0]!;
  const o = await run(
    'status',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    other,
    '--json',
  );
  const oh = (JSON.parse(o.out) as StatusReport).hosts[0]!;
  assert.is(oh.compliance, null);
  assert.equal(oh.failingControls, []);
});

test('fleet status: per-channel compliance summary from verified acks; --problems keeps hosts with failing controls', async () => {
  const s = scene('views-fleet');
  const r = await run(
    'status',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--now',
    NOW_ISO,
    '--json',
  );
  assert.is(r.code, 0, r.err);
  const report = JSON.parse(r.out) as StatusReport;
  // Only the latest acks are read and no manifest verified: the summary says what the signed acks prove.
  assert.equal(
    report.compliance.map((c) => [
      c.channel,
      c.frameworks,
      c.mode,
      c.failing.map((f) => `${f.host} ${f.control}`),
    ]),
    [['ch-0', ['cis'], null, [`${s.a} aide`]]],
  );
  const text = await run('status', '--tree', s.fx.tree, '--root', s.fx.rootFile, '--now', NOW_ISO);
  assert.match(text.out, `  compliance: cis; 1 host(s) reporting; 1 failing: ${s.a} cis/aide`);
  const p = await run(
    'status',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--now',
    NOW_ISO,
    '--problems',
    '--json',
  );
  const problems = JSON.parse(p.out) as StatusReport;
  assert.ok(problems.hosts.some((h) => h.host === s.a));
  assert.ok(problems.hosts.every((h) => h.host !== s.b));
  assert.ok(problems.channels.some((c) => c.channel === 'ch-0'));
  const pt = await run(
    'status',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--now',
    NOW_ISO,
    '--problems',
  );
  assert.match(pt.out, new RegExp(`${s.a} .*FAILING controls: cis/aide`));
});

test('trace --host shows the controls with the newest evidence of the whole history', async () => {
  const s = scene('views-trace');
  const r = await run(
    'trace',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    s.b,
    '--acks-log',
    s.fx.logFile,
    '--json',
  );
  assert.is(r.code, 0, r.err);
  const t = JSON.parse(r.out) as TraceReport;
  assert.equal(
    t.compliance!.controls.map((c) => c.status),
    ['ok', 'no-evidence', 'no-evidence'],
  );
  const text = await run(
    'trace',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    s.a,
    '--acks-log',
    s.fx.logFile,
  );
  assert.is(text.code, 0, text.err);
  assert.match(text.out, `compliance of ${s.a}: enforce, frameworks cis`);
  assert.match(text.out, /auditd +runtime +ok .*ack seq 13/);
});

test.run();
