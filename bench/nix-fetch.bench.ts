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
// Target: agent <= 1.2 x floor. `NIX_FETCH_BENCH_ROUNDS` (default 5).
import { loadavg } from 'node:os';
import { NixE2e } from '../tests/support/nix-e2e.ts';
import { benchSystem, cleanupNixHosts } from '../tests/support/nix-hosts.ts';
import { hasTool } from '../tests/support/skip.ts';
import { run } from '../tests/nix/nix-env.ts';
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
  const agents = Array.from({ length: rounds }, (_, i) => `agent${i + 1}`);
  const floors = Array.from({ length: rounds }, (_, i) => `floor${i + 1}`);
  const target = await benchSystem();
  const e2e = await NixE2e.create({
    hosts: [...agents, ...floors],
    agent: { probeIntervalMs: 100 },
  });
  const { stack, sys } = e2e;
  try {
    await e2e.seed(sys.v1);
    await e2e.push([target], e2e.key, { compression: 'none' });
    await e2e.publish(
      e2e.fleet({
        prod: {
          hosts: Object.fromEntries(agents.map((h) => [h, target])),
          waves: [{ soakSeconds: 0 }],
          confirmDeadlineSeconds: 300,
        },
      }),
    );
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed(agents[0]!);
    // Exactly the activator's options (the floor pays what the agent's fetch pays).
    const fetchArgv = [
      'nix',
      'copy',
      ...fetchOptions([e2e.key.publicKey]),
      '--from',
      e2e.cacheUrl,
      target,
    ];

    const rows: {
      first: 'floor' | 'agent';
      floor: number;
      agent: number;
      fetch: number;
      record: number;
      stage: number;
      switch: number;
      confirm: number;
    }[] = [];
    // Timed inside the host's namespace, as a child of a Node process (as the agent runs it): the
    // namespace set-up and Node's start are outside the interval on both sides.
    const measureFloor = async (i: number): Promise<number> => {
      const [r] = await e2e.host(floors[i]!).driver([{ op: 'timed', argv: fetchArgv }], {
        env: { NIX_SSL_CERT_FILE: stack.lab.pki.caCert },
      });
      if (!r?.ok) throw new Error(`nix copy (floor) failed: ${JSON.stringify(r)}`);
      return r.value as number;
    };
    const measureAgent = async (i: number) => {
      const run = await stack.runAgentOnce(agents[i]!, {}, 600_000);
      const at = (event: string) => {
        const e = run.events.find((x) => x['event'] === event);
        if (!e)
          throw new Error(
            `${agents[i]}: no '${event}' event: ${JSON.stringify(run.events.slice(-5))}`,
          );
        return Date.parse(String(e['time']));
      };
      if (run.outcome?.['acted'] !== 'confirmed')
        throw new Error(`${agents[i]} did not confirm: ${JSON.stringify(run.events.slice(-5))}`);
      return {
        agent: at('healthy') - at('fetching'),
        fetch: at('decision') - at('fetching'),
        record: at('switching') - at('decision'),
        stage: at('staged') - at('switching'),
        switch: at('switched') - at('staged'),
        confirm: at('healthy') - at('switched'),
      };
    };
    // Each measurement starts with the disk's dirty pages written (`sync`): the 50 MB the previous one
    // wrote to its host's store is flushed in the background otherwise, and slows whichever runs next.
    // The order alternates too, so neither side is always the one that runs second.
    const settle = async () => {
      const r = await run('sync', [], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`sync failed: ${r.stderr}`);
    };
    for (let i = 0; i < rounds; i++) {
      let floor = 0;
      let agent: Awaited<ReturnType<typeof measureAgent>> | undefined;
      for (const side of i % 2 === 0 ? ['floor', 'agent'] : ['agent', 'floor']) {
        await settle();
        if (side === 'floor') floor = await measureFloor(i);
        else agent = await measureAgent(i);
      }
      rows.push({ floor, ...agent!, first: i % 2 === 0 ? 'floor' : 'agent' });
    }

    const ratio = median(rows.map((r) => r.agent)) / median(rows.map((r) => r.floor));
    console.log(
      `one host, a 50 MB closure (${target.slice(44)}) from nginx's /nix-cache/ over https; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    console.log('');
    console.log(
      '| round | first | floor: nix copy alone, ms | agent: eligible -> healthy, ms | fetch + GC root | pending record | started ack ∥ generation | switch script | activated ack + probe | agent / floor |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    rows.forEach((r, i) =>
      console.log(
        `| ${i + 1} | ${r.first} | ${r.floor.toFixed(0)} | ${r.agent.toFixed(0)} | ${r.fetch} | ${r.record} | ${r.stage} | ${r.switch} | ${r.confirm} | ${(r.agent / r.floor).toFixed(2)} |`,
      ),
    );
    const col = (k: 'fetch' | 'record' | 'stage' | 'switch' | 'confirm') =>
      median(rows.map((r) => r[k])).toFixed(0);
    console.log('');
    console.log(
      `medians, ms: floor ${median(rows.map((r) => r.floor)).toFixed(0)}, agent ${median(rows.map((r) => r.agent)).toFixed(0)} = fetch + GC root ${col('fetch')}, pending record ${col('record')}, started ack ∥ generation ${col('stage')}, switch script ${col('switch')}, activated ack + probe ${col('confirm')}`,
    );
    console.log('');
    console.log(
      `median ratio agent / floor: ${ratio.toFixed(2)} (target <= 1.20: ${ratio <= 1.2 ? 'met' : 'NOT met'})`,
    );
  } finally {
    await e2e.close();
    cleanupNixHosts();
  }
}
