// Ack endpoint throughput: verified (Ed25519 + chain) and fdatasync'ed acks per second, with p50/p99
// latency, for concurrent hosts each posting its own hash chain. The endpoint runs as its own process
// (`nixfleet cp serve --acks-only`, as behind nginx) so the load generator does not share its event
// loop; with and without group commit in one run.
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
} from '../tests/control-plane/tree-fixture.ts';
import type { SignedAck } from '../protocol/acks.ts';
import { AckService } from '../control-plane/ack-service.ts';
import { loadReleaseView } from '../control-plane/release-view.ts';
import { loadavg, cpus } from 'node:os';

const BIN = fileURLToPath(new URL('../bin/nixfleet.js', import.meta.url));
const HOSTS = Number(process.env.ACK_BENCH_HOSTS ?? 64);
const PER_HOST = Number(process.env.ACK_BENCH_PER_HOST ?? 60);

async function startEndpoint(
  dir: string,
  groupCommit: boolean,
): Promise<{ child: ChildProcess; port: number }> {
  const args = [
    BIN,
    'cp',
    'serve',
    '--acks-only',
    '--tree',
    dir,
    '--port',
    '0',
    '--acks-log',
    join(dir, `log-${groupCommit}`),
    '--rate-limit',
    'off',
  ];
  if (!groupCommit) args.push('--no-group-commit');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]!) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`cp serve exited ${code}`)));
  });
  return { child, port };
}

function post(port: number, agent: Agent, ack: SignedAck, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = request(
      {
        host: '127.0.0.1',
        port,
        path: '/acks',
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-ssl-client-verify': 'SUCCESS',
          'x-ssl-client-s-dn': `CN=${ack.signed.host},OU=agent`,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

export default async function bench(): Promise<void> {
  const dir = tempDir('ack-bench');
  const hosts = fixtureHosts(
    Object.fromEntries(Array.from({ length: HOSTS }, (_, i) => [`h${i}`, { wave: i % 4 }])),
  );
  writeTree(dir, { keys: fixtureKeys(), hosts, version: 1 });
  // Pre-sign every chain so the measurement is the endpoint, not the load generator's signing.
  const chains = hosts.map((h) => {
    const c = new AckChain(h);
    return Array.from({ length: PER_HOST }, () => {
      const a = c.next();
      return { ack: a, body: JSON.stringify(a) };
    });
  });
  const rows: string[][] = [];
  try {
    for (const groupCommit of [true, false]) {
      const { child, port } = await startEndpoint(dir, groupCommit);
      try {
        const agent = new Agent({ keepAlive: true, maxSockets: HOSTS });
        const latencies: number[] = [];
        let failures = 0;
        const t0 = performance.now();
        await Promise.all(
          chains.map(async (chain) => {
            for (const { ack, body } of chain) {
              const s = performance.now();
              const status = await post(port, agent, ack, body);
              latencies.push(performance.now() - s);
              if (status !== 201) failures++;
            }
          }),
        );
        const secs = (performance.now() - t0) / 1000;
        agent.destroy();
        latencies.sort((a, b) => a - b);
        const n = HOSTS * PER_HOST;
        rows.push([
          groupCommit ? 'group commit' : 'fsync per ack',
          String(HOSTS),
          String(n),
          secs.toFixed(2),
          Math.round(n / secs).toString(),
          pct(latencies, 50).toFixed(1),
          pct(latencies, 99).toFixed(1),
          String(failures),
        ]);
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    // The endpoint's own work without HTTP (strict intake, signature, chain, group-commit fsync), in process.
    const svc = await AckService.open({
      logDir: join(dir, 'log-inproc'),
      publishRoot: dir,
      rateLimit: false,
    });
    svc.setView(loadReleaseView(dir));
    const latencies: number[] = [];
    let failures = 0;
    const t0 = performance.now();
    await Promise.all(
      chains.map(async (chain) => {
        for (const { ack, body } of chain) {
          const s = performance.now();
          const r = await svc.submit(Buffer.from(body), {
            cn: ack.signed.host,
            ou: 'agent',
            serial: null,
          });
          latencies.push(performance.now() - s);
          if (r.status !== 201) failures++;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    const n = HOSTS * PER_HOST;
    rows.push([
      'in-process AckService, group commit (no HTTP)',
      String(HOSTS),
      String(n),
      secs.toFixed(2),
      Math.round(n / secs).toString(),
      pct(latencies, 50).toFixed(1),
      pct(latencies, 99).toFixed(1),
      String(failures),
    ]);
    rows.push(['(fsyncs for those acks)', '', '', '', String(svc.logStats.syncs), '', '', '']);
    await svc.close();
  } finally {
    removeDir(dir);
  }
  console.log(
    `load average (1 min) after the run: ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`,
  );
  const head = [
    'mode',
    'concurrent hosts',
    'acks',
    'seconds',
    'acks/s',
    'p50 ms',
    'p99 ms',
    'non-201',
  ];
  console.log(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}
