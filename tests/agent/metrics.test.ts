// The agent's node_exporter textfile: written atomically at the end of every run (failed runs too),
// parseable by a strict exposition-format parser, saying what the run did.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { parseAgentConfig } from '../../agent/config.ts';
import { agentPhase, renderAgentMetrics } from '../../agent/metrics.ts';
import { renderMetrics } from '../../protocol/prometheus.ts';
import { requireTool } from '../support/skip.ts';
import { parsePrometheusText, sampleValue } from '../support/prom-parse.ts';
import { makeLab, badIsUnhealthy, labFleet, OLD, NEW, BAD } from './lab-fleet.ts';

test('label values from outside are escaped; the strict parser reads them back exactly', () => {
  const nasty = 'web"1\\x\nnext';
  const text = renderMetrics([
    {
      name: 'nf_test',
      help: 'a help with \\ and\nnewline',
      type: 'gauge',
      samples: [
        { labels: { host: nasty }, value: 1 },
        { labels: { host: 'b' }, value: NaN },
      ],
    },
  ]);
  assert.is(text.split('\n').length, 5, 'one sample per line: HELP, TYPE, 2 samples, final LF');
  const fam = parsePrometheusText(text).get('nf_test')!;
  assert.is(fam.help, 'a help with \\ and\nnewline');
  assert.is(fam.samples[0]!.labels['host'], nasty);
  assert.ok(Number.isNaN(fam.samples[1]!.value));
  // The parser is strict: the unescaped forms are refused.
  assert.throws(() => parsePrometheusText('# HELP x h\n# TYPE x gauge\nx{host="a"b"} 1\n'));
  assert.throws(() => parsePrometheusText('x 1\n'), /without HELP and TYPE/);
  assert.throws(
    () => parsePrometheusText('# HELP x h\n# TYPE x gauge\nx 1 1700000000\n'),
    /timestamp/,
  );
  assert.throws(
    () => renderMetrics([{ name: 'bad-name', help: 'h', type: 'gauge', samples: [] }]),
    /not a valid metric name/,
  );
  assert.throws(
    () =>
      renderMetrics([
        { name: 'ok', help: 'h', type: 'gauge', samples: [{ labels: { __x: 'a' }, value: 1 }] },
      ]),
    /label name/,
  );
});

test('phase: a pending record wins; then what was done', () => {
  assert.is(
    agentPhase({
      outcome: { kind: 'decided', decision: 'converged', acted: null },
      pendingPhase: 'switched',
    }),
    'confirming',
  );
  assert.is(
    agentPhase({
      outcome: { kind: 'decided', decision: 'activate', acted: 'rolled-back' },
      pendingPhase: null,
    }),
    'rolled-back',
  );
  assert.is(
    agentPhase({
      outcome: { kind: 'decided', decision: 'activate', acted: 'confirmed' },
      pendingPhase: null,
    }),
    'converged',
  );
  assert.is(
    agentPhase({ outcome: { kind: 'decided', decision: 'wait', acted: null }, pendingPhase: null }),
    'waiting',
  );
  assert.is(agentPhase({ outcome: { kind: 'unreachable' }, pendingPhase: null }), 'unknown');
  assert.is(agentPhase({ outcome: 'error', pendingPhase: null }), 'unknown');
});

test('config: metricsFile defaults to null, must be a .prom file, is resolved against the config file', () => {
  const base = {
    controlPlaneUrl: 'https://cp/',
    caFile: 'ca',
    certFile: 'c',
    keyFile: 'k',
    host: 'h1',
    hostKeyFile: 'hk',
    trustRootFile: 'r',
    stateDir: 's',
    activator: { kind: 'simulated', initialPath: OLD },
  };
  assert.is(parseAgentConfig(base, '/etc/nf/agent.json').metricsFile, null);
  assert.is(
    parseAgentConfig({ ...base, metricsFile: 'tf/nixfleet.prom' }, '/etc/nf/agent.json')
      .metricsFile,
    '/etc/nf/tf/nixfleet.prom',
  );
  assert.throws(
    () => parseAgentConfig({ ...base, metricsFile: '/x/metrics.txt' }, '/etc/nf/agent.json'),
    /metricsFile/,
  );
});

test('every run writes the textfile atomically: converged, rolled back, unreachable', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['m1', 'm2'], {
    activator: badIsUnhealthy,
  });
  const textDir = mkdtempSync(join(tmpdir(), 'nf-textfile-'));
  try {
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { m1: NEW, m2: BAD },
          waves: [{ soakSeconds: 0, failureThreshold: { count: 1 } }],
          confirmDeadlineSeconds: 6,
        },
      }),
    );
    await lab.startControlPlane();
    const file = (h: string) => join(textDir, `nixfleet-${h}.prom`);
    const run = (h: string) =>
      runAgentOnce(lab.agentConfig(h, { metricsFile: file(h), probeIntervalMs: 100 }), {
        log: memoryLogger(h),
      });

    const t0 = Date.now();
    const o1 = await run('m1');
    assert.ok(o1.kind === 'decided' && o1.acted === 'confirmed', JSON.stringify(o1));
    let m = parsePrometheusText(readFileSync(file('m1'), 'utf8'));
    assert.is(sampleValue(m, 'nixfleet_agent_phase', { phase: 'converged' }), 1);
    assert.is(
      m.get('nixfleet_agent_phase')!.samples.filter((s) => s.value === 1).length,
      1,
      'exactly one phase is current',
    );
    assert.is(sampleValue(m, 'nixfleet_agent_last_cycle_result', { result: 'decided' }), 1);
    assert.is(sampleValue(m, 'nixfleet_agent_last_cycle_success'), 1);
    assert.is(sampleValue(m, 'nixfleet_agent_on_target'), 1);
    assert.is(
      sampleValue(m, 'nixfleet_agent_generation_info', { current: NEW, target: NEW, host: 'm1' }),
      1,
    );
    assert.ok(sampleValue(m, 'nixfleet_agent_current_generation') >= 2);
    assert.is(sampleValue(m, 'nixfleet_agent_release_version'), 1);
    assert.is(sampleValue(m, 'nixfleet_agent_quarantined_closures'), 0);
    const verifiedAt = sampleValue(m, 'nixfleet_agent_last_verification_timestamp_seconds');
    assert.ok(verifiedAt >= Math.floor(t0 / 1000) - 1);
    assert.ok(sampleValue(m, 'nixfleet_agent_last_cycle_duration_seconds') > 0);
    assert.is((statSync(file('m1')).mode & 0o777).toString(8), '644', 'readable by node_exporter');
    assert.equal(
      readdirSync(textDir).filter((f) => !f.endsWith('.prom')),
      [],
      'no temp file left behind (and none named *.prom)',
    );

    const o2 = await run('m2');
    assert.ok(o2.kind === 'decided' && o2.acted === 'rolled-back', JSON.stringify(o2));
    m = parsePrometheusText(readFileSync(file('m2'), 'utf8'));
    assert.is(sampleValue(m, 'nixfleet_agent_phase', { phase: 'rolled-back' }), 1);
    assert.is(sampleValue(m, 'nixfleet_agent_quarantined_closures'), 1);
    assert.is(sampleValue(m, 'nixfleet_agent_on_target'), 0);

    // The control plane goes away: the run fails, the file still says so and keeps the last verification.
    await lab.stopControlPlane();
    const o3 = await runAgentOnce(
      lab.agentConfig('m1', { metricsFile: file('m1'), retries: 0, requestTimeoutMs: 2000 }),
      { log: memoryLogger('m1') },
    );
    assert.is(o3.kind, 'unreachable');
    m = parsePrometheusText(readFileSync(file('m1'), 'utf8'));
    assert.is(sampleValue(m, 'nixfleet_agent_last_cycle_result', { result: 'unreachable' }), 1);
    assert.is(sampleValue(m, 'nixfleet_agent_last_cycle_success'), 0);
    assert.is(
      sampleValue(m, 'nixfleet_agent_last_verification_timestamp_seconds'),
      verifiedAt,
      'the last good verification is kept',
    );
  } finally {
    await lab.close();
  }
});

test('rendered agent metrics carry an outside host name safely', () => {
  const text = renderAgentMetrics({
    host: 'h"\\\n',
    current: { number: 3, path: '/nix/store/x' },
    target: null,
    releaseVersion: null,
    phase: 'unknown',
    result: 'error',
    durationMs: 5,
    finishedAt: 0,
    quarantined: 0,
    lastVerifiedAt: null,
  });
  const m = parsePrometheusText(text);
  assert.is(sampleValue(m, 'nixfleet_agent_current_generation', { host: 'h"\\\n' }), 3);
  assert.is(m.get('nixfleet_agent_last_verification_timestamp_seconds')!.samples.length, 0);
});

test.run();
