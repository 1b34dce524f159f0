// nginx serving the control plane with mTLS (the exact `nixfleet nginx-config` config): polls per second
// measured with autocannon (it can present a client certificate), and the fleet size one machine serves
// at a 60 s poll interval. Rows: a steady-state poll (conditional GET -> 304) on keep-alive connections,
// a full GET (200), and a 304 poll that opens a new TLS connection every time (an agent started by a
// systemd timer does not keep its connection between runs).
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { hasTool } from '../tests/support/skip.ts';
import { makeTestPki } from '../tests/support/pki.ts';
import { startNginx, freePort, makeRuntimeDir, removeRuntimeDir } from '../tests/support/nginx.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
} from '../tests/control-plane/tree-fixture.ts';
import { renderNginxConfig } from '../control-plane/nginx-config.ts';
import { ensureRevocationMaps, syncTree } from '../control-plane/sync.ts';

const SECONDS = Number(process.env.NGINX_BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.NGINX_BENCH_CONNECTIONS ?? 64);

// autocannon ships no type declarations: the slice of its API used here.
interface AcResult {
  connections: number;
  requests: { average: number };
  latency: { p99: number };
  non2xx: number;
  errors: number;
  statusCodeStats: Record<string, { count: number } | undefined>;
}
type AcOptions = {
  url: string;
  connections?: number;
  duration?: number;
  amount?: number;
  headers?: Record<string, string>;
  reconnectRate?: number;
  tlsOptions?: object;
};
const autocannonModule = 'autocannon';
const autocannon = (
  (await import(autocannonModule)) as { default: (o: AcOptions) => Promise<AcResult> }
).default;

interface Row {
  name: string;
  result: AcResult;
}

async function freshConnectionPolls(
  url: string,
  tls: object,
  etag: string,
  concurrency: number,
  seconds: number,
): Promise<AcResult> {
  const { request } = await import('node:https');
  const { createSecureContext } = await import('node:tls');
  const secureContext = createSecureContext(tls);
  const latencies: number[] = [];
  let bad = 0;
  const until = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const t = performance.now();
      const r = request(
        url,
        Object.assign({ agent: false as const, headers: { 'if-none-match': etag } }, tls, {
          secureContext,
        }),
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== 304) bad++;
            latencies.push(performance.now() - t);
            resolve();
          });
        },
      );
      r.on('error', () => {
        bad++;
        resolve();
      });
      r.end();
    });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) await one();
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    connections: concurrency,
    requests: { average: latencies.length / elapsed },
    latency: { p99: Math.round(latencies[Math.floor(latencies.length * 0.99)] ?? 0) },
    non2xx: 0,
    errors: bad,
    statusCodeStats: {},
  };
}

export default async function bench(): Promise<void> {
  if (!hasTool('nginx') || !hasTool('openssl')) {
    console.log('skipped: nginx and openssl are required (apt-get install -y nginx-light openssl)');
    return;
  }
  const pki = makeTestPki({ hosts: ['web1'] });
  const work = tempDir('nginx-bench');
  chmodSync(work, 0o755);
  const runtime = makeRuntimeDir();
  const treeDir = join(work, 'cp');
  mkdirSync(treeDir);
  ensureRevocationMaps(treeDir);
  const keys = fixtureKeys();
  writeTree(join(work, 'ci'), { keys, hosts: fixtureHosts({ web1: {}, db1: {} }), version: 1 });
  await syncTree({ from: join(work, 'ci'), treeDir, pinnedRoot: keys.signedRoot });
  const port = await freePort();
  const config = renderNginxConfig({
    treeDir,
    ...pki.nginxTls(),
    listen: `127.0.0.1:${port}`,
    ackUpstream: '127.0.0.1:9',
    runtimeDir: runtime,
    workerProcesses: 'auto',
  }).replace(/access_log [^;]+;/, 'access_log off;');
  const nginx = await startNginx({ config, runtimeDir: runtime, port });
  const url = `https://127.0.0.1:${port}/timestamp.json`;
  const tlsOptions = pki.clientTls(pki.hosts['web1']!);
  const rows: Row[] = [];
  try {
    const probe = await autocannon({ url, connections: 1, amount: 1, tlsOptions });
    void probe;
    const { request } = await import('node:https');
    const etag = await new Promise<string>((resolve, reject) => {
      const r = request(url, { ...tlsOptions }, (res) => {
        res.resume();
        resolve(String(res.headers['etag']));
      });
      r.on('error', reject);
      r.end();
    });
    const run = (name: string, extra: Partial<AcOptions>) =>
      autocannon({ url, connections: CONNECTIONS, duration: SECONDS, tlsOptions, ...extra }).then(
        (result) => rows.push({ name, result }),
      );
    await run('304 poll, keep-alive', { headers: { 'if-none-match': etag } });
    await run('200 GET, keep-alive', {});
    // autocannon's reconnectRate drops the response it reconnects on from its counts: measure this row
    // with node:https and no keep-alive instead (the client's handshakes share the 2 cores too).
    rows.push({
      name: '304 poll, new TLS connection each (node:https client)',
      result: await freshConnectionPolls(url, tlsOptions, etag, 16, SECONDS),
    });
  } finally {
    await nginx.stop();
    removeRuntimeDir(runtime);
    removeDir(work);
    pki.cleanup();
  }
  console.log(
    `nginx workers: auto (${(await import('node:os')).cpus().length} cores), ${SECONDS} s per row, load average before: ${loadavg()[0]!.toFixed(1)}`,
  );
  const head = [
    'scenario',
    'connections',
    'requests/s',
    'p99 ms',
    'non-2xx/304',
    'hosts at 60 s (1 req/poll)',
    'hosts at 60 s (3 req/poll)',
  ];
  console.log(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  for (const { name, result } of rows) {
    const rps = result.requests.average;
    const bad = result.non2xx - (result.statusCodeStats['304']?.count ?? 0) + result.errors;
    console.log(
      `| ${name} | ${result.connections} | ${Math.round(rps)} | ${result.latency.p99} | ${bad} | ${Math.round(rps * 60).toLocaleString('en')} | ${Math.round((rps * 60) / 3).toLocaleString('en')} |`,
    );
  }
}
