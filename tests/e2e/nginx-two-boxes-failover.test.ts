// Two control plane boxes, one killed mid-rollout (issue 10 section 6). Each box is its own network
// namespace with the real nginx (the rendered config) in front of its own ack endpoint process and
// its own append-only ack log, both serving the same tree installed by `cp sync`. The agents run as
// daemons in a third namespace, joined to each box by a veth pair, configured with both URLs (box A
// first). Once the first wave's host is healthy on the new target, box A dies: nginx (master and
// workers, by process group) and its ack endpoint are SIGKILLed. The rollout must converge through box B, and
// from the signed acks:
//   - nothing acknowledged is lost: every ack box A stored is also in box B's log (the agents
//     re-posted and back-filled their chains to B, so B alone holds every host's history from seq 1);
//   - `nixfleet cp merge` of both logs is complete: every host's chain from seq 1 to its journal's
//     head, no gap, no fork, every ack verified against the release; `nixfleet trace` reads the union.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { runTag, sweepDeadRunsOnce } from '../support/netns.ts';
import {
  jsonLines,
  startCli,
  until,
  type CliProcess,
  REPO_ROOT,
} from '../support/e2e-processes.ts';
import {
  makeRuntimeDir,
  removeRuntimeDir,
  startNginx,
  type RunningNginx,
} from '../support/nginx.ts';
import { Lab } from '../support/lab.ts';
import { labFleet, NEW, OLD } from '../agent/lab-fleet.ts';
import { renderNginxConfig } from '../../control-plane/nginx-config.ts';
import { ensureRevocationMaps, syncTree } from '../../control-plane/sync.ts';
import { ACK_LOG_FILE, auditAckChains, parseAckLog } from '../../protocol/ack-log.ts';
import { ackDigest, readAck } from '../../protocol/acks.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { PREFERRED_BOX_FILE } from '../../agent/control-planes.ts';
import { readPrivateKey } from '../../protocol/keys.ts';

const tag = (process.pid % 100000).toString();
const nsTag = runTag();
const NS_AGENTS = `nf-${nsTag}-fo-h`;
// These addresses exist only inside the namespaces this test creates.
const BOXES = [
  {
    name: 'a',
    ns: `nf-${nsTag}-fo-a`,
    addr: '10.231.91.1',
    peer: '10.231.91.2',
    veth: `nffa${tag}`,
  },
  {
    name: 'b',
    ns: `nf-${nsTag}-fo-b`,
    addr: '10.231.92.1',
    peer: '10.231.92.2',
    veth: `nffb${tag}`,
  },
] as const;
const HTTPS_PORT = 18443;
const ACK_PORT = 18081;
const HOSTS = ['h1', 'h2', 'h3', 'h4'];
const FLEET = 'failover';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function setUpNamespaces(): void {
  sweepDeadRunsOnce();
  ip('netns', 'add', NS_AGENTS);
  ip('-n', NS_AGENTS, 'link', 'set', 'lo', 'up');
  for (const b of BOXES) {
    ip('netns', 'add', b.ns);
    ip('link', 'add', b.veth, 'type', 'veth', 'peer', 'name', `${b.veth}h`);
    ip('link', 'set', b.veth, 'netns', b.ns);
    ip('link', 'set', `${b.veth}h`, 'netns', NS_AGENTS);
    ip('-n', b.ns, 'addr', 'add', `${b.addr}/24`, 'dev', b.veth);
    ip('-n', NS_AGENTS, 'addr', 'add', `${b.peer}/24`, 'dev', `${b.veth}h`);
    ip('-n', b.ns, 'link', 'set', 'lo', 'up');
    ip('-n', b.ns, 'link', 'set', b.veth, 'up');
    ip('-n', NS_AGENTS, 'link', 'set', `${b.veth}h`, 'up');
  }
}

function tearDownNamespaces(): void {
  // Deleting a namespace deletes its veth ends, and with them their peers.
  for (const ns of [NS_AGENTS, ...BOXES.map((b) => b.ns)]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      /* not created */
    }
  }
}

/** One control plane box: its tree dir, nginx and ack endpoint, inside its own namespace. */
class Box {
  readonly cpDir: string;
  readonly runtimeDir = makeRuntimeDir();
  nginx: RunningNginx | null = null;
  ackEndpoint: CliProcess | null = null;

  constructor(
    readonly spec: (typeof BOXES)[number],
    root: string,
    private readonly lab: Lab,
  ) {
    this.cpDir = join(root, `box-${spec.name}`);
    mkdirSync(this.cpDir, { recursive: true });
    chmodSync(this.cpDir, 0o755);
    ensureRevocationMaps(this.cpDir);
  }

  get url(): string {
    return `https://${this.spec.addr}:${HTTPS_PORT}/`;
  }

  get logFile(): string {
    return join(this.cpDir, '.ack-log', ACK_LOG_FILE);
  }

  async start(logsDir: string): Promise<void> {
    await syncTree({ from: this.lab.treeDir, treeDir: this.cpDir, pinnedRoot: this.lab.root });
    const p = startCli(
      [
        'cp',
        'serve',
        '--acks-only',
        '--tree',
        this.cpDir,
        '--host',
        '127.0.0.1',
        '--port',
        String(ACK_PORT),
        '--rate-limit',
        'off',
      ],
      join(logsDir, `ack-endpoint-${this.spec.name}.log`),
      { netns: this.spec.ns },
    );
    this.ackEndpoint = p;
    await until('ack endpoint listening', 30_000, () => {
      if (!p.running()) throw new Error(`ack endpoint exited:\n${p.output()}`);
      return p.output().includes(`"port":${ACK_PORT}`);
    });
    this.nginx = await startNginx({
      config: renderNginxConfig({
        treeDir: this.cpDir,
        caCert: this.lab.pki.caCert,
        serverCert: this.lab.pki.serverCert,
        serverKey: this.lab.pki.serverKey,
        listen: `${this.spec.addr}:${HTTPS_PORT}`,
        ackUpstream: `127.0.0.1:${ACK_PORT}`,
        runtimeDir: this.runtimeDir,
        workerProcesses: 1,
      }),
      runtimeDir: this.runtimeDir,
      port: HTTPS_PORT,
      netns: this.spec.ns,
    });
  }

  /** The box dies: nginx (master and workers, its process group) and the ack endpoint, SIGKILLed. */
  async kill(): Promise<void> {
    await this.nginx!.kill9();
    this.nginx = null;
    await this.ackEndpoint!.kill9();
    this.ackEndpoint = null;
  }

  async stop(): Promise<void> {
    await this.nginx?.stop().catch(() => undefined);
    this.nginx = null;
    await this.ackEndpoint?.stop(2000).catch(() => undefined);
    this.ackEndpoint = null;
    removeRuntimeDir(this.runtimeDir);
  }

  /** The box's acknowledged acks: its append-only log. */
  records() {
    if (!existsSync(this.logFile)) return [];
    return parseAckLog(readFileSync(this.logFile)).records.map((r) => ({
      digest: r.digest,
      ack: readAck(r.canonical, this.logFile),
    }));
  }
}

function journalOf(lab: Lab, host: string) {
  const h = lab.host(host);
  return new AckJournal(new StateDir(h.stateDir), FLEET, host, readPrivateKey(h.keyFile)).all();
}

test('two boxes behind real nginx, box A killed mid-rollout: the rollout converges through box B, nothing acknowledged is lost, the merged history is complete', async () => {
  if (
    !requireTool('ip', 'network namespaces for the two control plane boxes') ||
    !requireTool('nginx', 'the boxes serve the tree through the real nginx') ||
    !requireTool('openssl', 'the fleet PKI')
  )
    return;
  if (process.getuid?.() !== 0) {
    if (process.env.CI === 'true')
      throw new Error('the failover test creates network namespaces and must run as root in CI');
    console.warn('\n  !!! SKIPPED (network namespaces need root)\n');
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'nf-failover-e2e-'));
  chmodSync(root, 0o755);
  const logsDir = join(root, 'logs');
  mkdirSync(logsDir);
  const lab = new Lab({
    dir: join(root, 'lab'),
    fleetName: FLEET,
    hosts: HOSTS,
    initialPath: OLD,
    serverNames: BOXES.map((b) => b.addr),
  });
  const boxes = BOXES.map((spec) => new Box(spec, root, lab));
  const [a, b] = boxes as [Box, Box];
  const agents = new Map<string, CliProcess>();
  const explain = (e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    for (const [h, p] of agents)
      err.message += `\n--- ${h}\n${p.output().split('\n').slice(-15).join('\n')}`;
    return err;
  };
  tearDownNamespaces();
  try {
    setUpNamespaces();
    // One host in wave 0, which soaks long enough for box A to die before wave 1 starts.
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: Object.fromEntries(HOSTS.map((h) => [h, NEW])),
          waves: [{ count: 1, soakSeconds: 8 }, { soakSeconds: 1 }],
          heartbeatSeconds: 1,
          confirmDeadlineSeconds: 30,
        },
      }),
    );
    for (const box of boxes) await box.start(logsDir);

    for (const h of HOSTS) {
      const config = lab.agentConfig(h, {
        controlPlaneUrl: a.url,
        otherControlPlaneUrls: [b.url],
        schedule: '* * * * * *',
        requestTimeoutMs: 3000,
        retries: 1,
      });
      agents.set(
        h,
        startCli(['agent', '--config', lab.host(h).configFile], join(logsDir, `${h}.log`), {
          netns: NS_AGENTS,
        }),
      );
      assert.is(config.otherControlPlaneUrls.length, 1);
    }

    // Mid-rollout: the first wave's host is healthy on NEW and every host has been heard from, all
    // acknowledged by box A. (A waiting host's first presence ack may come after the first wave's
    // healthy one on a loaded machine, so both are waited for, not assumed.)
    const firstHealthy = await until(
      'a healthy ack on NEW and an ack from every host in box A',
      90_000,
      () => {
        const records = a.records();
        const everyHost = HOSTS.every((h) => records.some((r) => r.ack.signed.host === h));
        return everyHost
          ? records.find((r) => r.ack.signed.kind === 'healthy' && r.ack.signed.target === NEW)
          : undefined;
      },
    ).catch((e) => {
      throw explain(e);
    });
    await a.kill();
    const acknowledgedByA = a.records();
    assert.ok(acknowledgedByA.length >= HOSTS.length, 'box A took acks from every host');
    assert.ok(
      acknowledgedByA.some((r) => r.digest === ackDigest(firstHealthy.ack)),
      'the healthy ack is in what A acknowledged',
    );
    const notYet = HOSTS.filter(
      (h) =>
        !acknowledgedByA.some((r) => r.ack.signed.host === h && r.ack.signed.kind === 'healthy'),
    );
    assert.ok(notYet.length >= 2, `mid-rollout: hosts not yet healthy on A: ${notYet.join(', ')}`);

    // Converges through box B: every host healthy on NEW there, and B holds every host's whole chain.
    await until(
      'every host healthy on NEW through box B, with its whole chain in B',
      180_000,
      () => {
        const records = b.records();
        return HOSTS.every((h) => {
          const mine = records.filter((r) => r.ack.signed.host === h);
          const healthy = mine.some(
            (r) => r.ack.signed.kind === 'healthy' && r.ack.signed.target === NEW,
          );
          const chain = auditAckChains(
            mine.map((r) => ({
              host: h,
              seq: r.ack.signed.seq,
              prev: r.ack.signed.prev,
              digest: r.digest,
            })),
          )[0];
          return healthy && chain?.complete === true;
        });
      },
      500,
    ).catch((e) => {
      throw explain(e);
    });
    for (const p of agents.values()) await p.stop(3000);

    // Nothing acknowledged is lost: B alone holds every ack A acknowledged (re-posted, back-filled).
    const inB = new Set(b.records().map((r) => r.digest));
    const lost = acknowledgedByA.filter((r) => !inB.has(r.digest));
    assert.equal(
      lost.map((r) => `${r.ack.signed.host}#${r.ack.signed.seq}`),
      [],
      'acks box A acknowledged and box B lacks',
    );
    for (const h of HOSTS) {
      const events = jsonLines(agents.get(h)!.output());
      assert.ok(
        events.some((e) => e['event'] === 'control-plane-failover' && e['from'] === a.url),
        `${h} failed over from box A`,
      );
      assert.is(
        JSON.parse(readFileSync(join(lab.host(h).stateDir, PREFERRED_BOX_FILE), 'utf8')).url,
        b.url,
        `${h} sticks to box B`,
      );
    }

    // The merged history (`nixfleet cp merge` of both logs) is complete and verified.
    const mergedDir = join(root, 'merged');
    const merge = spawnSync(
      process.execPath,
      [
        join(REPO_ROOT, 'bin/nixfleet.js'),
        'cp',
        'merge',
        '--tree',
        b.cpDir,
        '--root',
        lab.rootFile,
        '--out',
        mergedDir,
        a.logFile,
        b.logFile,
        '--json',
      ],
      { encoding: 'utf8' },
    );
    assert.is(merge.status, 0, merge.stdout + merge.stderr);
    const summary = JSON.parse(merge.stdout) as {
      rejected: unknown[];
      forks: unknown[];
      chains: { host: string; head: number; complete: boolean }[];
    };
    assert.equal([summary.rejected, summary.forks], [[], []]);
    const merged = parseAckLog(readFileSync(join(mergedDir, ACK_LOG_FILE))).records;
    const mergedDigests = new Set(merged.map((r) => r.digest));
    for (const h of HOSTS) {
      const chain = summary.chains.find((c) => c.host === h);
      const journal = journalOf(lab, h);
      assert.ok(chain?.complete, `${h}: merged chain complete from seq 1`);
      assert.is(chain!.head, journal.at(-1)!.signed.seq, `${h}: merged head = the journal's head`);
      // Every ack the host signed and the endpoints confirmed is in the merged history.
      const missing = journal.filter((j) => !mergedDigests.has(ackDigest(j)));
      assert.equal(
        missing.map((j) => j.signed.seq),
        [],
        `${h}: journal acks missing from the merged history`,
      );
    }

    // `status` over the dead box's directory: its published heads are from before it died; with box
    // B's log added, every host's latest ack is its journal's head (the union of the boxes).
    const status = (...extra: string[]) => {
      const r = spawnSync(
        process.execPath,
        [
          join(REPO_ROOT, 'bin/nixfleet.js'),
          'status',
          '--tree',
          a.cpDir,
          '--root',
          lab.rootFile,
          '--no-cache',
          '--json',
          ...extra,
        ],
        { encoding: 'utf8' },
      );
      assert.is(r.status, 0, r.stdout + r.stderr);
      const hosts = (JSON.parse(r.stdout) as { hosts: { host: string; lastAckSeq: number }[] })
        .hosts;
      return HOSTS.map((h) => hosts.find((x) => x.host === h)?.lastAckSeq ?? 0);
    };
    const heads = HOSTS.map((h) => journalOf(lab, h).at(-1)!.signed.seq);
    assert.equal(status('--acks-log', a.logFile, '--acks-log', b.logFile), heads);
    assert.ok(
      status().some((seq, i) => seq < heads[i]!),
      'box A alone shows older heads (it died mid-rollout)',
    );

    // The operator view reads the union of the two logs.
    const trace = spawnSync(
      process.execPath,
      [
        join(REPO_ROOT, 'bin/nixfleet.js'),
        'trace',
        '--tree',
        b.cpDir,
        '--root',
        lab.rootFile,
        '--channel',
        'prod',
        '--acks-log',
        a.logFile,
        '--acks-log',
        b.logFile,
        '--no-cache',
        '--json',
      ],
      { encoding: 'utf8' },
    );
    assert.is(trace.status, 0, trace.stdout + trace.stderr);
    const report = JSON.parse(trace.stdout) as { hosts: { host: string; activated: unknown }[] };
    for (const h of HOSTS)
      assert.ok(
        report.hosts.some((x) => x.host === h),
        `${h} in the trace over both logs`,
      );
  } finally {
    for (const p of agents.values()) await p.stop(2000).catch(() => undefined);
    for (const box of boxes) await box.stop();
    tearDownNamespaces();
    await lab.close();
    if (process.env.NIXFLEET_KEEP_E2E) console.log(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
});

test.run();
