// Eligible -> healthy for one real Nix host fetching a 50 MB closure from the control plane's nginx
// (/nix-cache/ over https, fleet CA through NIX_SSL_CERT_FILE), against its floor in the same run:
//   floor: `nix copy --from https://.../nix-cache <system>` alone, with the activator's options, into a
//          fresh host in the same state (its own /nix, seeded with v1: the same paths already present),
//          timed around the command by a Node process inside that host's namespace;
//   agent: `nixfleet agent --once` on another such host (own mount namespace), from its `fetching` log
//          line (every gate passed: the decision to activate) to its `healthy` line (switched, probe
//          passed). Columns: fetch (`nix copy` + the pending GC root), pending record, the started ack
//          posted while the generation is created (`nix-env --set`), switch-to-configuration, then
//          activated ack + probe.
// The system is tests/fixtures/nix-systems#bench50m (v1 plus 50 MB of random bytes, built once per
// machine); the cache is uncompressed (random bytes do not compress, so xz would only add CPU on both
// sides equally). Each round measures both on fresh hosts, in alternating order, each after a `sync`;
// the ratio uses the medians.
// Target: agent <= 1.2 x floor. `NIX_FETCH_BENCH_ROUNDS` (default 5). `NIX_FETCH_BENCH_BEFORE`: another
// checkout's bin/nixfleet.js (built), measured in the same rounds on hosts of its own ("before").
import { loadavg } from 'node:os';
import { NixE2e } from '../tests/support/nix-e2e.ts';
import { benchSystem, cleanupNixHosts } from '../tests/support/nix-hosts.ts';
import { hasTool } from '../tests/support/skip.ts';
import { run } from '../tests/nix/nix-env.ts';
import { childrenCpuMs } from '../tests/support/children-cpu.ts';
import { fetchOptions } from '../agent/activators/nix.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export default async function bench(): Promise<void> {
  for (const tool of ['nix', 'nginx', 'openssl', 'unshare']) {
    if (!hasTool(tool)) {
      console.log(`skipped: ${tool} is not installed`);
      return;
    }
  }
  const rounds = Number(process.env.NIX_FETCH_BENCH_ROUNDS ?? 5);
  const beforeCli = process.env.NIX_FETCH_BENCH_BEFORE || null;
  const agents = Array.from({ length: rounds }, (_, i) => `agent${i + 1}`);
  const befores = beforeCli ? Array.from({ length: rounds }, (_, i) => `before${i + 1}`) : [];
  const floors = Array.from({ length: rounds }, (_, i) => `floor${i + 1}`);
  const target = await benchSystem();
  const e2e = await NixE2e.create({
    hosts: [...agents, ...befores, ...floors],
    agent: { probeIntervalMs: 100 },
  });
  const { stack, sys } = e2e;
  try {
    await e2e.seed(sys.v1);
    await e2e.push([target], e2e.key, { compression: 'none' });
    await e2e.publish(
      e2e.fleet({
        prod: {
          hosts: Object.fromEntries([...agents, ...befores].map((h) => [h, target])),
          waves: [{ soakSeconds: 0 }],
          confirmDeadlineSeconds: 300,
        },
      }),
    );
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed(agents[0]!);
    // The activator's signature and download options (the floor pays what the agent's fetch pays).
    const fetchArgv = [
      'nix',
      'copy',
      '--extra-experimental-features',
      'nix-command',
      ...fetchOptions([e2e.key.publicKey]),
      '--from',
      e2e.cacheUrl,
      target,
    ];

    type AgentTimes = Awaited<ReturnType<typeof measureAgent>>;
    const rows: {
      order: string;
      floor: { ms: number; cpuMs: number };
      agent: AgentTimes;
      before: AgentTimes | null;
    }[] = [];
    // Timed inside the host's namespace, as a child of a Node process (as the agent runs it): the
    // namespace set-up and Node's start are outside the interval on both sides.
    const measureFloor = async (i: number): Promise<{ ms: number; cpuMs: number }> => {
      const [r] = await e2e.host(floors[i]!).driver([{ op: 'timed', argv: fetchArgv }], {
        env: { NIX_SSL_CERT_FILE: stack.lab.pki.caCert },
      });
      if (!r?.ok) throw new Error(`nix copy (floor) failed: ${JSON.stringify(r)}`);
      return r.value as { ms: number; cpuMs: number };
    };
    const measureAgent = async (host: string, cli: string | null) => {
      // The whole `agent --once` run's CPU (its Nix children included): the same work but for the
      // activation path on both agents, so before and after differ by what that path costs.
      const cpu = childrenCpuMs();
      const run = await stack.runAgentOnce(host, {}, 600_000, cli ? { cli } : {});
      const cpuMs = childrenCpuMs() - cpu;
      const at = (event: string) => {
        const e = run.events.find((x) => x['event'] === event);
        if (!e)
          throw new Error(`${host}: no '${event}' event: ${JSON.stringify(run.events.slice(-5))}`);
        return Date.parse(String(e['time']));
      };
      if (run.outcome?.['acted'] !== 'confirmed')
        throw new Error(`${host} did not confirm: ${JSON.stringify(run.events.slice(-5))}`);
      return {
        cpuMs,
        total: at('healthy') - at('fetching'),
        fetch: at('decision') - at('fetching'),
        record: at('switching') - at('decision'),
        stage: at('staged') - at('switching'),
        switch: at('switched') - at('staged'),
        confirm: at('healthy') - at('switched'),
      };
    };
    // Each measurement starts with the disk's dirty pages written (`sync`): the 50 MB the previous one
    // wrote to its host's store is flushed in the background otherwise, and slows whichever runs next.
    // The order rotates too, so no side is always the one that runs first.
    const settle = async () => {
      const r = await run('sync', [], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`sync failed: ${r.stderr}`);
    };
    const sides = beforeCli ? ['floor', 'agent', 'before'] : ['floor', 'agent'];
    for (let i = 0; i < rounds; i++) {
      const order = [...sides.slice(i % sides.length), ...sides.slice(0, i % sides.length)];
      let floor = { ms: 0, cpuMs: 0 };
      let agent: AgentTimes | undefined;
      let before: AgentTimes | null = null;
      for (const side of order) {
        await settle();
        if (side === 'floor') floor = await measureFloor(i);
        else if (side === 'agent') agent = await measureAgent(agents[i]!, null);
        else before = await measureAgent(befores[i]!, beforeCli);
      }
      rows.push({ order: order.join(' '), floor, agent: agent!, before });
    }

    const floorMedian = median(rows.map((r) => r.floor.ms));
    console.log(
      `one host, a 50 MB closure (${target.slice(44)}) from nginx's /nix-cache/ over https; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    const table = (name: string, pick: (r: (typeof rows)[number]) => AgentTimes) => {
      console.log('');
      console.log(`${name}:`);
      console.log('');
      console.log(
        '| round | order | floor: nix copy alone, ms | agent: eligible -> healthy, ms | fetch | pending record | started ack ∥ generation | switch script | activated ack + probe | agent / floor | CPU ms: floor / agent run |',
      );
      console.log('|---|---|---|---|---|---|---|---|---|---|---|');
      rows.forEach((r, i) => {
        const t = pick(r);
        console.log(
          `| ${i + 1} | ${r.order} | ${r.floor.ms.toFixed(0)} | ${t.total} | ${t.fetch} | ${t.record} | ${t.stage} | ${t.switch} | ${t.confirm} | ${(t.total / r.floor.ms).toFixed(2)} | ${r.floor.cpuMs} / ${t.cpuMs} |`,
        );
      });
      const col = (k: keyof AgentTimes) => median(rows.map((r) => pick(r)[k])).toFixed(0);
      const ratio = median(rows.map((r) => pick(r).total)) / floorMedian;
      console.log('');
      console.log(
        `medians, ms: floor ${floorMedian.toFixed(0)}, agent ${col('total')} = fetch ${col('fetch')}, pending record ${col('record')}, started ack ∥ generation ${col('stage')}, switch script ${col('switch')}, activated ack + probe ${col('confirm')}; CPU: floor's nix copy ${median(rows.map((r) => r.floor.cpuMs))}, whole agent run ${col('cpuMs')}`,
      );
      console.log(
        `median ratio agent / floor: ${ratio.toFixed(2)} (target <= 1.20: ${ratio <= 1.2 ? 'met' : 'NOT met'})`,
      );
    };
    if (beforeCli) table(`before (${beforeCli})`, (r) => r.before!);
    table(beforeCli ? 'after (this checkout)' : 'agent', (r) => r.agent);
  } finally {
    await e2e.close();
    cleanupNixHosts();
  }
}
