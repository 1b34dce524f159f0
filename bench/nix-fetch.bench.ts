// Eligible -> healthy for one real Nix host fetching a 50 MB closure from the control plane's nginx
// (/nix-cache/ over https, fleet CA through NIX_SSL_CERT_FILE), against its floor in the same run:
//   floor: `nix copy --from https://.../nix-cache <system>` alone, with the activator's options, into a
//          fresh host in the same state (its own /nix, seeded with v1: the same paths already present);
//   agent: `nixfleet agent --once` on another such host (own mount namespace), from its `fetching` log
//          line (every gate passed: the decision to activate) to its `healthy` line (switched, probe
//          passed): fetch + profile generation + switch-to-configuration + started/activated acks + probe.
// The system is tests/fixtures/nix-systems#bench50m (v1 plus 50 MB of random bytes, built once per
// machine); the cache is uncompressed (random bytes do not compress, so xz would only add CPU on both
// sides equally). Rounds alternate floor and agent on fresh hosts; the ratio uses the medians.
// Target: agent <= 1.2 x floor. `NIX_FETCH_BENCH_ROUNDS` (default 5).
import { loadavg } from 'node:os';
import { NixE2e } from '../tests/support/nix-e2e.ts';
import { benchSystem, cleanupNixHosts } from '../tests/support/nix-hosts.ts';
import { hasTool } from '../tests/support/skip.ts';

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
    const fetchArgv = [
      'nix',
      'copy',
      '--extra-experimental-features',
      'nix-command',
      '--option',
      'require-sigs',
      'true',
      '--option',
      'trusted-public-keys',
      e2e.key.publicKey,
      '--option',
      'substituters',
      '',
      '--option',
      'narinfo-cache-negative-ttl',
      '0',
      '--from',
      e2e.cacheUrl,
      target,
    ];

    const rows: {
      floor: number;
      agent: number;
      fetch: number;
      start: number;
      switch: number;
      confirm: number;
    }[] = [];
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      const copy = await e2e
        .host(floors[i]!)
        .exec(fetchArgv, { env: { NIX_SSL_CERT_FILE: stack.lab.pki.caCert }, timeoutMs: 600_000 });
      const floor = performance.now() - t;
      if (copy.code !== 0) throw new Error(`nix copy (floor) failed: ${copy.stderr.slice(-600)}`);

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
      rows.push({
        floor,
        agent: at('healthy') - at('fetching'),
        fetch: at('decision') - at('fetching'),
        start: at('switching') - at('decision'),
        switch: at('switched') - at('switching'),
        confirm: at('healthy') - at('switched'),
      });
    }

    const ratio = median(rows.map((r) => r.agent)) / median(rows.map((r) => r.floor));
    console.log(
      `one host, a 50 MB closure (${target.slice(44)}) from nginx's /nix-cache/ over https; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    console.log('');
    console.log(
      '| round | floor: nix copy alone, ms | agent: eligible -> healthy, ms | fetch (prepare) | started ack | generation + switch | activated ack + probe | agent / floor |',
    );
    console.log('|---|---|---|---|---|---|---|---|');
    rows.forEach((r, i) =>
      console.log(
        `| ${i + 1} | ${r.floor.toFixed(0)} | ${r.agent.toFixed(0)} | ${r.fetch} | ${r.start} | ${r.switch} | ${r.confirm} | ${(r.agent / r.floor).toFixed(2)} |`,
      ),
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
