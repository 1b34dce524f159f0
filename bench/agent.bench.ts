// The agent's steady-state cycle with nothing new: a converged host polling an unchanged tree.
// Targets (issue 4): only 304s, <= 2 KB transferred, <= 100 ms per cycle excluding process start.
import { closeAgentConnections, runAgentOnce } from '../agent/agent.ts';
import { memoryLogger } from '../agent/log.ts';
import { makeLab, labFleet, NEW } from '../tests/agent/lab-fleet.ts';

export default async function bench(): Promise<void> {
  const hosts = ['h1', 'h2', 'h3', 'h4'];
  const lab = makeLab(hosts);
  try {
    // Two waves and `halt` (labFleet's default): since h-steady the steady cycle reads no ack bundle
    // (its decision cannot depend on them: agent/cycle.ts peerAcksStep), only timestamp.json; a long
    // heartbeat interval so no POST falls into the measured cycles.
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: Object.fromEntries(hosts.map((h) => [h, NEW])),
          waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
          heartbeatSeconds: 3600,
        },
      }),
    );
    await lab.startControlPlane();
    for (let round = 0; round < 40; round++) {
      const outs = await Promise.all(
        hosts.map((h) =>
          runAgentOnce(lab.agentConfig(h), { log: memoryLogger(h), reuseConnections: true }),
        ),
      );
      if (outs.every((o) => o.kind === 'decided' && o.decision === 'converged')) break;
    }
    const cfg = lab.agentConfig('h1');
    // Warm-up: the first converged cycles still fetch bundles that changed; then the tree is still.
    await new Promise((r) => setTimeout(r, 1500));
    for (let i = 0; i < 3; i++)
      await runAgentOnce(cfg, { log: memoryLogger('h1'), reuseConnections: true });
    const log = memoryLogger('h1');
    const N = 30;
    for (let i = 0; i < N; i++) await runAgentOnce(cfg, { log, reuseConnections: true });
    const cycles = log.records.filter((r) => r['event'] === 'cycle-done') as unknown as {
      ms: number;
      requests: number;
      notModified: number;
      bodyBytes: number;
      wireBytes: number;
    }[];
    const ms = cycles.map((c) => c.ms).sort((a, b) => a - b);
    const sum = (f: (c: (typeof cycles)[number]) => number) => cycles.reduce((a, c) => a + f(c), 0);
    const row = (k: string, v: string, target: string) =>
      console.log(`| ${k.padEnd(34)} | ${v.padStart(12)} | ${target.padEnd(10)} |`);
    console.log(
      `steady-state cycle of a converged host (${N} cycles, keep-alive mTLS, embedded control plane on loopback)\n`,
    );
    console.log('| metric                             |        value | target     |');
    console.log('|------------------------------------|--------------|------------|');
    row('requests per cycle', (sum((c) => c.requests) / N).toFixed(1), '');
    row('of which 304 Not Modified', (sum((c) => c.notModified) / N).toFixed(1), 'all');
    row('response body bytes per cycle', (sum((c) => c.bodyBytes) / N).toFixed(0), '');
    row('TLS bytes on the wire per cycle', (sum((c) => c.wireBytes) / N).toFixed(0), '<= 2048');
    row('wall time per cycle, median (ms)', String(ms[Math.floor(N / 2)]), '<= 100');
    row('wall time per cycle, p90 (ms)', String(ms[Math.floor(N * 0.9)]), '');
    const decisions = new Set(
      log.records.filter((r) => r['event'] === 'decision').map((r) => r['decision']),
    );
    console.log(`\ndecisions during the measured cycles: ${[...decisions].join(', ')}`);
  } finally {
    closeAgentConnections();
    await lab.close();
  }
}
