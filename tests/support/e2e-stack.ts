// End-to-end test helper: the production shape of a fleet on one machine, loopback only.
//   CI side:      tests/support/lab.ts (org root, release key, trust root, openssl fleet PKI, the real publisher)
//   control plane: `cp sync` (syncTree) into its own tree dir, the real nginx with the config
//                  renderNginxConfig renders, and the ack endpoint as a child process
//                  (`nixfleet cp serve --acks-only`) behind it, so it can be killed -9
//   hosts:        `nixfleet agent` child processes (daemon on a 1 s cron, or --once), each with its own
//                 state directory, client certificate and host key, talking to nginx only
//   network:      loopback (127.0.0.1, free ports), or with `netns: true` a private network
//                 (tests/support/netns.ts): nginx and the ack endpoint in the control plane's namespace,
//                 each host's agent in its own namespace, reaching nginx over a veth pair; the test's
//                 own requests (request()) are sent with curl from inside a host's namespace
// Every process is stopped by PID in close() (and SIGKILLed at exit if a test dies first); close()
// removes the temp dir and the namespaces. Requires nginx and openssl: call requireTool() for both
// first (and requireNetns() for `netns: true`).
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import type { ActivatorConfig } from '../../agent/activators/index.ts';
import type { AgentConfig } from '../../agent/config.ts';
import { renderNginxConfig } from '../../control-plane/nginx-config.ts';
import { ensureRevocationMaps, syncTree, type SyncResult } from '../../control-plane/sync.ts';
import { parseAckLog, ACK_LOG_FILE } from '../../protocol/ack-log.ts';
import { readAck, type SignedAck } from '../../protocol/acks.ts';
import type { Ack } from '../../protocol/schemas/ack.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import type { PublishResult } from '../../publisher/publish.ts';
import {
  startNginx,
  freePort,
  makeRuntimeDir,
  removeRuntimeDir,
  type RunningNginx,
} from './nginx.ts';
import { startCli, jsonLines, until, type CliProcess, type ProcessWrap } from './e2e-processes.ts';
import { req, type Resp, type ReqOptions } from '../control-plane/http.ts';
import { NetnsTopology } from './netns.ts';

export const OLD = '/nix/store/00000000000000000000000000000000-nixos-system-old';
export const NEW = '/nix/store/11111111111111111111111111111111-nixos-system-new';

export interface StackOptions {
  hosts: string[];
  /** Per-host activator (default: simulated, starting on OLD). */
  activator?: (host: string) => ActivatorConfig;
  /** Agent config fields for every host. */
  agent?: Partial<Omit<AgentConfig, 'activator'>>;
  /** How each host's agent process is started (e.g. inside its own mount namespace: NixTestHost.processWrap). */
  agentProcess?: (host: string) => ProcessWrap | undefined;
  /** Nix cache public keys of root v1. */
  cacheKeys?: string[];
  /** Every host and the control plane in its own network namespace (needs root: requireNetns()). */
  netns?: boolean;
  /** `nginx-config --tls-session-cache`: a cache size, or "off" for tickets (default: the shared cache). */
  nginxSessionCache?: string;
}

/** Ports inside the control plane's own namespace (nothing else listens there). */
const NETNS_NGINX_PORT = 8443;
const NETNS_ACK_PORT = 8081;

/** Preloaded into an agent process to set its wall clock off (tests/support/clock-offset.mjs). */
const CLOCK_OFFSET_SHIM = new URL('./clock-offset.mjs', import.meta.url).href;

export interface AgentRunOptions {
  /** This host's wall clock is off by this much (positive = ahead). */
  clockOffsetMs?: number;
  /** Another checkout's bin/nixfleet.js instead of this one's (a benchmark's "before"). */
  cli?: string;
}

export interface OnceResult {
  code: number | null;
  outcome: Record<string, unknown> | null;
  events: Record<string, unknown>[];
}

export class E2eStack {
  readonly lab: Lab;
  /** The control plane's tree directory (current -> versions/..., acks/, nginx/*.map, .ack-log/). */
  readonly cpDir: string;
  readonly logsDir: string;
  readonly runtimeDir: string;
  nginx: RunningNginx | null = null;
  ackEndpoint: CliProcess | null = null;
  readonly agents = new Map<string, CliProcess>();
  private ackEndpointStarts = 0;
  private nginxConfig = '';

  private constructor(
    readonly dir: string,
    readonly nginxPort: number,
    readonly ackPort: number,
    private readonly opts: StackOptions,
    /** The private network (netns: true), else null (loopback). */
    readonly net: NetnsTopology | null,
  ) {
    this.lab = new Lab({
      dir: join(dir, 'lab'),
      fleetName: 'e2e',
      hosts: opts.hosts,
      initialPath: OLD,
      ...(net ? { serverNames: [net.cpAddr] } : {}),
      ...(opts.activator ? { activator: opts.activator } : {}),
      ...(opts.cacheKeys ? { cacheKeys: opts.cacheKeys } : {}),
      agent: {
        requestTimeoutMs: 2000,
        retries: 1,
        probeIntervalMs: 200,
        schedule: '* * * * * *',
        ...opts.agent,
      },
    });
    this.cpDir = join(dir, 'cp');
    this.logsDir = join(dir, 'logs');
    mkdirSync(this.cpDir, { recursive: true });
    mkdirSync(this.logsDir, { recursive: true });
    ensureRevocationMaps(this.cpDir);
    this.runtimeDir = makeRuntimeDir();
  }

  static async create(opts: StackOptions): Promise<E2eStack> {
    const dir = mkdtempSync(join(tmpdir(), 'nf-e2e-'));
    // nginx workers run unprivileged: they must be able to walk into the served tree.
    chmodSync(dir, 0o755);
    let net: NetnsTopology | null = null;
    try {
      if (opts.netns) {
        net = NetnsTopology.create(opts.hosts);
        return new E2eStack(dir, NETNS_NGINX_PORT, NETNS_ACK_PORT, opts, net);
      }
      return new E2eStack(dir, await freePort(), await freePort(), opts, null);
    } catch (e) {
      net?.destroy();
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  get url(): string {
    return `https://${this.net?.cpAddr ?? '127.0.0.1'}:${this.nginxPort}/`;
  }

  /** CI: publish a release into the lab's CI tree (not yet visible to anyone). */
  publish(fleet: FleetInput, now?: number): PublishResult {
    return this.lab.publish(fleet, now);
  }

  /** `cp sync`: verify the CI tree against the pinned root and install it; nginx reloads its maps. */
  sync(): Promise<SyncResult> {
    return syncTree({
      from: this.lab.treeDir,
      treeDir: this.cpDir,
      pinnedRoot: this.lab.root,
      ...(this.nginx ? { nginxPidFile: this.nginx.pidFile } : {}),
    });
  }

  async startNginx(): Promise<RunningNginx> {
    this.nginxConfig ||= renderNginxConfig({
      treeDir: this.cpDir,
      caCert: this.lab.pki.caCert,
      serverCert: this.lab.pki.serverCert,
      serverKey: this.lab.pki.serverKey,
      listen: `${this.net?.cpAddr ?? '127.0.0.1'}:${this.nginxPort}`,
      ackUpstream: `127.0.0.1:${this.ackPort}`,
      runtimeDir: this.runtimeDir,
      workerProcesses: 1,
      ...(this.opts.nginxSessionCache ? { sessionCacheSize: this.opts.nginxSessionCache } : {}),
    });
    this.nginx = await startNginx({
      config: this.nginxConfig,
      runtimeDir: this.runtimeDir,
      port: this.nginxPort,
      ...(this.net ? { netns: this.net.cpNs } : {}),
    });
    return this.nginx;
  }

  async stopNginx(): Promise<void> {
    await this.nginx?.stop();
    this.nginx = null;
  }

  /** The ack endpoint behind nginx, as its own process, always on the same port (nginx's upstream). */
  async startAckEndpoint(): Promise<CliProcess> {
    const n = ++this.ackEndpointStarts;
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
        String(this.ackPort),
        '--rate-limit',
        'off',
      ],
      join(this.logsDir, `ack-endpoint-${n}.log`),
      this.net ? { netns: this.net.cpNs } : {},
    );
    this.ackEndpoint = p;
    await until(
      `ack endpoint on port ${this.ackPort}`,
      20_000,
      () => {
        if (!p.running()) throw new Error(`ack endpoint exited:\n${p.output()}`);
        return p.output().includes(`"port":${this.ackPort}`);
      },
      50,
    );
    return p;
  }

  /** Waits until a POST through nginx reaches a primed ack endpoint (a malformed ack gets 400, not 503/502). */
  async waitAckEndpointPrimed(host: string): Promise<void> {
    await until(
      'the ack endpoint to be primed behind nginx',
      20_000,
      async () => {
        const r = await this.request(host, 'acks', { method: 'POST', body: '{}' }).catch(
          () => null,
        );
        return r?.status === 400;
      },
      100,
    );
  }

  /** nginx + ack endpoint + the current CI tree synced: what agents talk to. */
  async startControlPlane(): Promise<void> {
    await this.startAckEndpoint();
    await this.startNginx();
    await this.sync();
  }

  /**
   * The control plane host is lost: nginx and the ack endpoint stop, and its whole tree dir (installed
   * versions, ack log, published acks, revocation maps) is deleted. Start it again with startControlPlane().
   */
  async wipeControlPlane(): Promise<void> {
    await this.stopNginx();
    await this.ackEndpoint?.kill9();
    this.ackEndpoint = null;
    rmSync(this.cpDir, { recursive: true, force: true });
    mkdirSync(this.cpDir, { recursive: true });
    ensureRevocationMaps(this.cpDir);
  }

  /** One HTTPS request through nginx with a host's client certificate (from its namespace, if any). */
  request(host: string, path: string, o: Omit<ReqOptions, 'tls'> = {}): Promise<Resp> {
    const h = this.lab.host(host);
    if (this.net) return this.curlFrom(host, path, o);
    const tls = {
      ca: readFileSync(this.lab.pki.caCert, 'utf8'),
      cert: readFileSync(h.cert.certPath, 'utf8'),
      key: readFileSync(h.cert.keyPath, 'utf8'),
    };
    return req(this.url + path, { ...o, tls });
  }

  /** request() inside the host's namespace: curl, arguments as argv, the body on stdin. */
  private async curlFrom(host: string, path: string, o: Omit<ReqOptions, 'tls'>): Promise<Resp> {
    const h = this.lab.host(host);
    const headersFile = join(this.logsDir, `curl-headers-${host}.txt`);
    const argv = ['curl', '-sS', '--max-time', '10', '-D', headersFile, '-X', o.method ?? 'GET'];
    argv.push('--cacert', this.lab.pki.caCert, '--cert', h.cert.certPath, '--key', h.cert.keyPath);
    for (const [k, v] of Object.entries(o.headers ?? {})) argv.push('-H', `${k}: ${v}`);
    if (o.body !== undefined) argv.push('--data-binary', '@-');
    argv.push('-w', '\n%{http_code}', this.url + path);
    const out = this.net!.exec(this.net!.nsOf(host), argv, o.body?.toString() ?? '');
    const cut = out.lastIndexOf('\n');
    const headers: Record<string, string> = {};
    for (const line of readFileSync(headersFile, 'utf8').split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    return { status: Number(out.slice(cut + 1)), headers, body: out.slice(0, cut) };
  }

  /** Writes the host's agent config (pointing at nginx) and returns its path. */
  agentConfigFile(host: string, overrides: Partial<AgentConfig> = {}): string {
    this.lab.agentConfig(host, { controlPlaneUrl: this.url, ...overrides });
    return this.lab.host(host).configFile;
  }

  /** The agent daemon (a cycle every second) as a child process. */
  startAgent(
    host: string,
    overrides: Partial<AgentConfig> = {},
    run: AgentRunOptions = {},
  ): CliProcess {
    const p = startCli(
      ['agent', '--config', this.agentConfigFile(host, overrides)],
      this.agentLogFile(host),
      this.agentProcess(host, run),
    );
    this.agents.set(host, p);
    return p;
  }

  async stopAgent(host: string): Promise<void> {
    await this.agents.get(host)?.stop(1500);
    this.agents.delete(host);
  }

  /** `nixfleet agent --config FILE --once --json` as a child process. */
  async runAgentOnce(
    host: string,
    overrides: Partial<AgentConfig> = {},
    timeoutMs = 30_000,
    run: AgentRunOptions = {},
  ): Promise<OnceResult> {
    const file = join(this.logsDir, `${host}-once-${Date.now()}-${++this.onceRuns}.log`);
    const p = startCli(
      ['agent', '--config', this.agentConfigFile(host, overrides), '--once', '--json'],
      file,
      { ...this.agentProcess(host, run), ...(run.cli ? { cli: run.cli } : {}) },
    );
    const timer = setTimeout(() => void p.kill9(), timeoutMs);
    const code = await p.exited;
    clearTimeout(timer);
    const events = jsonLines(p.output());
    const last = events.findLast((e) => 'outcome' in e && !('event' in e));
    return {
      code,
      outcome: (last?.['outcome'] as Record<string, unknown> | undefined) ?? null,
      events,
    };
  }

  private onceRuns = 0;

  /** How a host's agent process starts: its namespace, the caller's wrap, a clock offset. */
  private agentProcess(
    host: string,
    run: AgentRunOptions,
  ): { netns?: string } & Partial<ProcessWrap> {
    const wrap = this.opts.agentProcess?.(host);
    const out: { netns?: string } & Partial<ProcessWrap> = { ...wrap };
    if (this.net) out.netns = this.net.nsOf(host);
    if (run.clockOffsetMs) {
      const env = wrap?.env ?? process.env;
      out.env = {
        ...env,
        NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import=${CLOCK_OFFSET_SHIM}`.trim(),
        NIXFLEET_TEST_CLOCK_OFFSET_MS: String(run.clockOffsetMs),
      };
    }
    return out;
  }

  agentLogFile(host: string): string {
    return join(this.logsDir, `${host}.log`);
  }

  /** The agent daemon's JSON log lines so far. */
  agentEvents(host: string): Record<string, unknown>[] {
    const f = this.agentLogFile(host);
    return existsSync(f) ? jsonLines(readFileSync(f, 'utf8')) : [];
  }

  /** Every ack the endpoint has acknowledged, in acceptance order (its append-only log). */
  ackLog(): SignedAck[] {
    const file = join(this.cpDir, '.ack-log', ACK_LOG_FILE);
    if (!existsSync(file)) return [];
    return parseAckLog(readFileSync(file)).records.map((r) => readAck(r.canonical, ACK_LOG_FILE));
  }

  ackLogDigests(): Set<string> {
    const file = join(this.cpDir, '.ack-log', ACK_LOG_FILE);
    if (!existsSync(file)) return new Set();
    return new Set(parseAckLog(readFileSync(file)).records.map((r) => r.digest));
  }

  acksOf(host: string): Ack[] {
    return this.ackLog()
      .map((a) => a.signed)
      .filter((a) => a.host === host);
  }

  /** The latest acks the control plane publishes under acks/hosts/ (what agents and the dashboard read). */
  publishedAcks(): SignedAck[] {
    const dir = join(this.cpDir, 'acks', 'hosts');
    if (!existsSync(dir)) return [];
    const out: SignedAck[] = [];
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        out.push(readAck(readFileSync(join(dir, f)), f));
      } catch {
        /* being replaced right now */
      }
    }
    return out;
  }

  /** Diagnostics for a failed assertion: the tail of every log. */
  logs(): string {
    const parts: string[] = [];
    for (const f of existsSync(this.logsDir) ? readdirSync(this.logsDir) : []) {
      const text = readFileSync(join(this.logsDir, f), 'utf8').split('\n').slice(-25).join('\n');
      parts.push(`--- ${f}\n${text}`);
    }
    if (this.nginx) parts.push(`--- nginx\n${this.nginx.logs().split('\n').slice(-20).join('\n')}`);
    return parts.join('\n');
  }

  /** The error with every log tail appended (for a catch around a test body). */
  explain(e: unknown): Error {
    const err = e instanceof Error ? e : new Error(String(e));
    err.message += `\n${this.logs()}`;
    return err;
  }

  async close(): Promise<void> {
    const stops: Promise<void>[] = [...this.agents.values()].map((a) => a.stop(1500));
    this.agents.clear();
    await Promise.allSettled(stops);
    await this.ackEndpoint?.stop(2000).catch(() => undefined);
    this.ackEndpoint = null;
    await this.stopNginx().catch(() => undefined);
    removeRuntimeDir(this.runtimeDir);
    this.net?.destroy();
    if (process.env.NIXFLEET_KEEP_E2E) console.log(`kept ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}
