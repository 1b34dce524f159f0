// End-to-end test helper: ack load through nginx. Each load host posts its own hash chain of signed
// heartbeat acks as fast as the endpoint answers, over one keep-alive mTLS connection pool; every ack
// that got a 2xx is recorded as acknowledged. A failed post (502 while the endpoint is down, a reset
// connection) is retried with the same ack, so the chain never forks: the endpoint answers either 201
// (it had not stored it) or 200 duplicate (it had, and its answer was lost).
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import { SCHEMA_VERSION, isoTime } from '../../protocol/schemas/common.ts';
import type { Lab } from './lab.ts';

export interface LoadStats {
  acknowledged: Map<string, SignedAck>;
  /** Last acknowledged ack per host. */
  heads: Map<string, SignedAck>;
  /** Failed attempts by cause ("502", "ECONNRESET", ...). */
  failures: Map<string, number>;
  /** Answers that must never happen to a well-behaved chain (409, 4xx): status + body. */
  unexpected: string[];
}

export class AckLoad {
  readonly stats: LoadStats = {
    acknowledged: new Map(),
    heads: new Map(),
    failures: new Map(),
    unexpected: [],
  };
  private stopping = false;
  private loops: Promise<void>[] = [];
  private readonly agents: Agent[] = [];

  constructor(
    private readonly lab: Lab,
    private readonly url: string,
    private readonly hosts: string[],
    private readonly ackFields: { releaseVersion: number; current: string },
  ) {}

  start(): void {
    for (const h of this.hosts) this.loops.push(this.run(h));
  }

  /** Stops posting (the in-flight post finishes) and closes the connections. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
  }

  failureCount(): number {
    let n = 0;
    for (const c of this.stats.failures.values()) n += c;
    return n;
  }

  private async run(host: string): Promise<void> {
    const h = this.lab.host(host);
    const agent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: readFileSync(this.lab.pki.caCert),
      cert: readFileSync(h.cert.certPath),
      key: readFileSync(h.cert.keyPath),
    });
    this.agents.push(agent);
    let prev: SignedAck | null = null;
    while (!this.stopping) {
      const ack = signAck(
        {
          type: 'ack',
          schemaVersion: SCHEMA_VERSION,
          fleet: this.lab.opts.fleetName,
          host,
          seq: prev ? prev.signed.seq + 1 : 1,
          prev: prev ? ackDigest(prev) : null,
          time: isoTime(Date.now()),
          kind: 'heartbeat',
          releaseVersion: this.ackFields.releaseVersion,
          rolloutId: null,
          target: this.ackFields.current,
          current: this.ackFields.current,
          healthySince: null,
          probes: [],
          reason: 'load',
        },
        h.key,
      );
      const body = canonicalString(ack);
      for (;;) {
        const r = await post(agent, this.url, body).catch((e: NodeJS.ErrnoException) => ({
          status: 0,
          body: e.code ?? e.message,
        }));
        if (r.status === 200 || r.status === 201) {
          this.stats.acknowledged.set(ackDigest(ack), ack);
          this.stats.heads.set(host, ack);
          break;
        }
        const cause = r.status === 0 ? r.body : String(r.status);
        this.stats.failures.set(cause, (this.stats.failures.get(cause) ?? 0) + 1);
        if (r.status >= 400 && r.status < 500)
          this.stats.unexpected.push(
            `${host} seq ${ack.signed.seq}: HTTP ${r.status} ${r.body.slice(0, 200)}`,
          );
        if (this.stopping) return;
        await new Promise((res) => setTimeout(res, 25));
      }
      prev = ack;
    }
  }
}

function post(agent: Agent, url: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const r = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.setTimeout(5000, () => r.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    r.end(body);
  });
}
