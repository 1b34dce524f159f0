// Reconciler benchmark: fleetView growth (1k / 10k / 100k hosts), decide() for one host in a 10k fleet,
// and a simulated 10,000-host rollout (3 channels x 4 waves, 60 s polls) against the theoretical minimum.
import {
  decide,
  fleetView,
  prepareFleet,
  type AckRecord,
  type FleetInput,
} from '../reconciler/index.ts';
import { syntheticFleet } from '../reconciler/simulator/generate.ts';
import { ackFor, type BuiltFleet } from '../reconciler/simulator/builders.ts';
import { simulate } from '../reconciler/simulator/sim.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;

/** A mid-rollout fleet: per channel wave 0 soaked, wave 1 half healthy/half activating, the rest idle. */
function midRollout(f: BuiltFleet): Record<string, AckRecord> {
  const acks: Record<string, AckRecord> = {};
  for (const plan of Object.values(f.plans)) {
    for (const w of plan.waves) {
      w.hosts.forEach((h, i) => {
        if (w.index === 0)
          acks[h] = ackFor(f, h, 'heartbeat', NOW - MIN, { healthySince: NOW - 30 * MIN, seq: 5 });
        else if (w.index === 1)
          acks[h] =
            i % 2 === 0
              ? ackFor(f, h, 'heartbeat', NOW - MIN, { healthySince: NOW - 4 * MIN, seq: 4 })
              : ackFor(f, h, 'started', NOW - MIN, { seq: 2 });
        else acks[h] = ackFor(f, h, 'heartbeat', NOW - MIN);
      });
    }
  }
  return acks;
}

function time(fn: () => void, minMs = 300): number {
  fn();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    fn();
    n++;
  }
  return (performance.now() - t0) / n;
}

export default async function run(): Promise<void> {
  console.log(
    'fleetView (3 channels x 4 waves, fleet-wide 10% budget, mid-rollout acks, per-host list included)',
  );
  console.log(
    '"fresh acks": every call gets ack objects it has never seen (a dashboard re-reading acks from disk);',
  );
  console.log(
    '"same acks": the same ack objects at a later `now` (phases reused while still valid).',
  );
  console.log('| hosts | fresh acks ms | per host us | growth | same acks ms |');
  console.log('|---:|---:|---:|---:|---:|');
  let prev: { n: number; ms: number } | null = null;
  let input10k: FleetInput | null = null;
  let fleet10k: BuiltFleet | null = null;
  for (const n of [1_000, 10_000, 100_000]) {
    const f = syntheticFleet({ hosts: n, channels: 3, waves: 4, budgetPct: 10 });
    const ackSets = [midRollout(f), midRollout(f)];
    const input: FleetInput = {
      now: NOW,
      plans: f.plans,
      budgets: f.budgets,
      revocations: f.revocations,
      acks: ackSets[0]!,
    };
    if (n === 10_000) {
      input10k = input;
      fleet10k = f;
    }
    let k = 0;
    const fresh = time(
      () => {
        fleetView({ ...input, acks: ackSets[k++ % 2]! });
      },
      n >= 100_000 ? 3000 : 800,
    );
    let j = 0;
    const same = time(
      () => {
        fleetView({ ...input, now: NOW + (j++ % 30) * 1000 });
      },
      n >= 100_000 ? 2000 : 500,
    );
    const growth = prev === null ? '' : `${(fresh / prev.ms).toFixed(1)}x for ${n / prev.n}x hosts`;
    console.log(
      `| ${n.toLocaleString('en')} | ${fresh.toFixed(1)} | ${((fresh * 1000) / n).toFixed(2)} | ${growth} | ${same.toFixed(1)} |`,
    );
    prev = { n, ms: fresh };
  }

  const f = fleet10k!;
  const input = input10k!;
  const host = f.plans['ch-1']!.waves[2]!.hosts[5]!;
  const m = f.manifests[host]!;
  const local = { current: f.previous[host]!, pending: null, previous: null, quarantine: [] };
  const ackSets = [midRollout(f), midRollout(f)];
  let k = 0;
  const decideMs = time(() => {
    decide({
      ...input,
      acks: ackSets[k++ % 2]!,
      manifest: m,
      freshness: { status: 'fresh' },
      local,
      inhibitor: null,
    });
  }, 1000);
  const prepared = prepareFleet(input);
  decide(
    { ...input, manifest: m, freshness: { status: 'fresh' }, local, inhibitor: null },
    prepared,
  );
  const sharedMs = time(() => {
    decide(
      { ...input, manifest: m, freshness: { status: 'fresh' }, local, inhibitor: null },
      prepared,
    );
  }, 300);
  console.log(
    `\ndecide() for one wave-2 host in a 10,000-host fleet (budget over all hosts, fresh acks every call): ${decideMs.toFixed(2)} ms; with a prepared fleet shared by the hosts deciding at that instant: ${(sharedMs * 1000).toFixed(1)} us`,
  );

  console.log(
    '\nSimulated rollouts (60 s polls +-5 s, activation 20-40 s, probes 10 s, soak 600 s per wave; polls and ack visibility aligned to 5 s)',
  );
  console.log(
    '| hosts | channels | waves | chained | simulated s | theoretical min s | ratio | decisions | acks | wall s |',
  );
  console.log('|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|');
  const only =
    process.env.RECONCILER_BENCH_SIM === '0'
      ? []
      : ([
          [10_000, false],
          [3_000, true],
        ] as const);
  for (const [n, chain] of only) {
    const fleet = syntheticFleet({ hosts: n, channels: 3, waves: 4, chain, soakSeconds: 600 });
    const t0 = performance.now();
    const r = simulate({
      seed: 42,
      fleet,
      pollSeconds: 60,
      batchVisibility: true,
      timeQuantumSeconds: 5,
    });
    const wall = (performance.now() - t0) / 1000;
    if (!r.converged || r.violations.length > 0)
      throw new Error(
        `simulation did not converge cleanly: ${r.violations.slice(0, 3).join('; ')}`,
      );
    console.log(
      `| ${n.toLocaleString('en')} | 3 | 4 | ${chain ? 'yes' : 'no'} | ${r.completedAt} | ${r.theoreticalMinimum} | ${(r.completedAt! / r.theoreticalMinimum).toFixed(3)} | ${r.decisions.toLocaleString('en')} | ${r.ackCount.toLocaleString('en')} | ${wall.toFixed(1)} |`,
    );
  }
}
