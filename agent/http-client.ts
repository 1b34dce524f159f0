// The agent's HTTPS client for the control plane: mTLS (client certificate) over a keep-alive agent,
// conditional GETs against an ETag cache, size caps enforced while the body streams in, a timeout per
// request, and retries with exponential backoff and full jitter for transient failures.
// Plain node:https, no fetch library: loading one costs a timer-driven run about as much CPU and memory
// as everything else it does in steady state, and its default headers cost bytes on every request.
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { TooLarge } from '../protocol/index.ts';
import type { HttpCache } from './http-cache.ts';
import { isLocalStateError } from './state-dir.ts';
import type { TlsSessionStore } from './tls-session.ts';

export interface HttpClientOptions {
  /** Base URL of the tree, e.g. https://cp.example:8443/ (trailing slash optional). */
  baseUrl: string;
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
  /** Where `cert` came from, named when the control plane refuses the certificate. */
  certFile?: string;
  cache?: HttpCache;
  timeoutMs?: number;
  /** Extra attempts after the first for transient failures (network error, 5xx, 429). */
  retries?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  random?: () => number;
  /** TLS session to resume from an earlier run, and where the latest one is left at close() (agent/tls-session.ts). */
  tlsSession?: TlsSessionStore;
}

export interface HttpStats {
  requests: number;
  notModified: number;
  retries: number;
  /** Response body bytes received. */
  bodyBytes: number;
  /** TLS connections opened, and how many of them resumed an earlier session (no certificate exchange). */
  connections: number;
  resumed: number;
}

/** The server does not have the file (404/410): a normal answer, not a transport failure. */
export class NotFound extends Error {
  constructor(readonly path: string) {
    super(`${path}: not found on the control plane`);
    this.name = 'NotFound';
  }
}

/** The control plane could not be reached or kept failing after every retry. */
export class Unreachable extends Error {
  constructor(
    readonly path: string,
    detail: string,
    readonly status?: number,
  ) {
    super(`${path}: control plane unreachable: ${detail}`);
    this.name = 'Unreachable';
  }
}

/**
 * nginx answered 400 because the TLS client certificate this host presented failed verification: revoked
 * in the CRL, expired, or not issued by the fleet CA. Not a transport failure and not worth a retry: it
 * takes an operator (a new certificate), so the message says which file to look at.
 */
export class CertificateRefused extends Unreachable {
  constructor(
    path: string,
    readonly certFile: string,
  ) {
    super(
      path,
      `HTTP 400: the control plane refused this host's client certificate (${certFile}): revoked, expired or not issued by the fleet CA`,
      400,
    );
    this.name = 'CertificateRefused';
  }
}

/** nginx's own page for a presented client certificate that failed verification (its internal 495). */
const NGINX_CERT_ERROR = /400 The SSL certificate error/;

/** "error: reason" from a JSON error body, or its first printable characters; '' if there is none. */
export function refusalReason(body: Uint8Array): string {
  const text = Buffer.from(body).toString('utf8');
  let reason = text;
  try {
    const j = JSON.parse(text) as { error?: unknown; reason?: unknown };
    const parts = [j.error, j.reason].filter(
      (x): x is string => typeof x === 'string' && x.length > 0,
    );
    if (parts.length) reason = parts.join(': ');
  } catch {
    /* not JSON: keep the text */
  }
  return reason
    .replace(/[^\x20-\x7e]+/g, ' ')
    .trim()
    .slice(0, 200);
}

class CountingAgent extends HttpsAgent {
  readonly openedSockets = new Set<Socket>();
  // Wire bytes of sockets that already closed (keep-alive sockets are counted when read).
  closedBytes = 0;
  connections = 0;
  resumed = 0;
  /** The newest session a server issued (TLS 1.3: its latest ticket), offered by every new connection. */
  latestSession: Buffer | undefined;
  sessionChanged = false;

  constructor(options: ConstructorParameters<typeof HttpsAgent>[0], session: Buffer | undefined) {
    super(options);
    this.latestSession = session;
  }

  override createConnection(
    ...args: Parameters<HttpsAgent['createConnection']>
  ): ReturnType<HttpsAgent['createConnection']> {
    // Our remembered session (from an earlier run) is offered only where the agent has none of its own.
    const [options, ...rest] = args as unknown as [Record<string, unknown>, ...unknown[]];
    const withSession =
      this.latestSession && !options['session']
        ? { ...options, session: this.latestSession }
        : options;
    const s = (HttpsAgent.prototype.createConnection as (...a: unknown[]) => TLSSocket).call(
      this,
      withSession,
      ...rest,
    );
    this.connections++;
    this.openedSockets.add(s);
    s.on('session', (session: Buffer) => {
      this.latestSession = session;
      this.sessionChanged = true;
    });
    s.once('secureConnect', () => {
      if (s.isSessionReused()) this.resumed++;
    });
    s.once('close', () => {
      this.closedBytes += s.bytesRead + s.bytesWritten;
      this.openedSockets.delete(s);
    });
    return s as unknown as ReturnType<HttpsAgent['createConnection']>;
  }
  wireBytes(): number {
    let n = this.closedBytes;
    for (const s of this.openedSockets) n += s.bytesRead + s.bytesWritten;
    return n;
  }
}

const TRANSIENT_STATUS = new Set([429, 500, 502, 503, 504]);

/** One request on the keep-alive agent; resolves with the response head, the body still to be read. */
function send(
  url: URL,
  o: {
    method: 'GET' | 'POST';
    agent: HttpsAgent;
    signal: AbortSignal;
    headers: Record<string, string>;
    body?: Buffer;
  },
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: o.method, agent: o.agent, signal: o.signal, headers: o.headers },
      resolve,
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Reads and discards a body (so the keep-alive connection can serve the next request). */
async function drain(res: IncomingMessage): Promise<void> {
  for await (const _ of res) {
    /* discard */
  }
}

function header(res: IncomingMessage, name: string): string | null {
  const v = res.headers[name];
  return typeof v === 'string' ? v : null;
}

/** An attempt's verdict that it is worth retrying. */
class Transient {
  constructor(
    readonly detail: string,
    readonly retryAfter: string | null,
    readonly status?: number,
  ) {}
}

export class HttpClient {
  private readonly counters = { requests: 0, notModified: 0, retries: 0, bodyBytes: 0 };
  private readonly agent: CountingAgent;
  private readonly base: URL;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly random: () => number;

  constructor(private readonly opts: HttpClientOptions) {
    this.base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : opts.baseUrl + '/');
    if (this.base.protocol !== 'https:')
      throw new Error(`control plane URL must be https: ${opts.baseUrl}`);
    this.agent = new CountingAgent(
      { ca: opts.ca, cert: opts.cert, key: opts.key, keepAlive: true, maxSockets: 4 },
      opts.tlsSession?.load(),
    );
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 3;
    this.backoffBaseMs = opts.backoffBaseMs ?? 250;
    this.backoffMaxMs = opts.backoffMaxMs ?? 5_000;
    this.random = opts.random ?? Math.random;
  }

  /** TLS bytes on the wire (handshakes included) since the client was created. */
  wireBytes(): number {
    return this.agent.wireBytes();
  }

  get stats(): HttpStats {
    return { ...this.counters, connections: this.agent.connections, resumed: this.agent.resumed };
  }

  /**
   * Closes the connections and leaves the newest TLS session for the next run. Keeping it is an
   * optimisation: a failure to write it (full disk) costs the next run a full handshake, nothing more.
   */
  close(): void {
    this.agent.destroy();
    if (this.opts.tlsSession && this.agent.sessionChanged && this.agent.latestSession) {
      try {
        this.opts.tlsSession.save(this.agent.latestSession);
        this.agent.sessionChanged = false;
      } catch {
        /* volatile by design: see above */
      }
    }
  }

  private url(path: string): URL {
    if (path.startsWith('/') || path.split('/').includes('..'))
      throw new Error(`refusing to fetch suspicious path ${path}`);
    return new URL(path, this.base);
  }

  /** Full jitter: uniform in [0, min(max, base * 2^attempt)], floored by a server's Retry-After. */
  private backoff(attempt: number, retryAfter: string | null): number {
    const cap = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** attempt);
    const jittered = Math.floor(this.random() * cap);
    const ra = retryAfter && /^\d{1,4}$/.test(retryAfter) ? Number(retryAfter) * 1000 : 0;
    return Math.min(this.backoffMaxMs, Math.max(jittered, ra));
  }

  /**
   * Runs `fn` with every request it makes bounded by `deadlineEpochMs` (Date.now() clock): each attempt's
   * timeout and each backoff end by then, and a request started after it fails at once (Unreachable).
   * The confirm window uses it so that no wait on a silent network outlives the confirm deadline.
   * Scopes nest (the earlier deadline wins); one client serves one cycle at a time.
   */
  async until<T>(deadlineEpochMs: number, fn: () => Promise<T>): Promise<T> {
    const outer = this.deadline;
    this.deadline = outer === null ? deadlineEpochMs : Math.min(outer, deadlineEpochMs);
    try {
      return await fn();
    } finally {
      this.deadline = outer;
    }
  }

  private deadline: number | null = null;

  /** Milliseconds left before the current `until` deadline (Infinity outside one). */
  private timeLeft(): number {
    return this.deadline === null ? Infinity : this.deadline - Date.now();
  }

  private async withRetries<T>(
    path: string,
    attempt: (signal: AbortSignal) => Promise<T | Transient>,
  ): Promise<T> {
    let last = 'no attempt';
    let lastStatus: number | undefined;
    for (let i = 0; i <= this.retries; i++) {
      const left = this.timeLeft();
      if (left <= 0)
        throw new Unreachable(
          path,
          `${i > 0 ? `${last}; ` : ''}the deadline of this request passed`,
          lastStatus,
        );
      if (i > 0) this.counters.retries++;
      const ac = new AbortController();
      const timeoutMs = Math.min(this.timeoutMs, left);
      const timer = setTimeout(() => ac.abort(), timeoutMs);
      let retryAfter: string | null = null;
      try {
        this.counters.requests++;
        const r = await attempt(ac.signal);
        if (r instanceof Transient) {
          last = r.detail;
          retryAfter = r.retryAfter;
          lastStatus = r.status;
        } else return r;
      } catch (e) {
        // A definite refusal (403...) is an answer, not a transient failure: retrying cannot change it.
        // A local failure (the ETag cache on a full disk) is not the network's: no retry, and it keeps its own name.
        if (
          e instanceof TooLarge ||
          e instanceof NotFound ||
          e instanceof Unreachable ||
          isLocalStateError(e)
        )
          throw e;
        last = ac.signal.aborted
          ? `no complete answer within ${Math.round(timeoutMs)} ms`
          : (e as Error).message;
      } finally {
        clearTimeout(timer);
      }
      if (i < this.retries)
        await new Promise((r) =>
          setTimeout(r, Math.max(0, Math.min(this.backoff(i, retryAfter), this.timeLeft()))),
        );
    }
    throw new Unreachable(path, last, lastStatus);
  }

  private async readCapped(
    res: IncomingMessage,
    path: string,
    maxBytes: number,
  ): Promise<Uint8Array> {
    const declared = Number(header(res, 'content-length') ?? NaN);
    if (declared > maxBytes) {
      res.destroy();
      throw new TooLarge(path, `server announced ${declared} bytes, limit is ${maxBytes}`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      total += chunk.length;
      this.counters.bodyBytes += chunk.length;
      if (total > maxBytes) {
        res.destroy();
        throw new TooLarge(path, `response exceeds the limit of ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
    return new Uint8Array(Buffer.concat(chunks, total));
  }

  /**
   * GET a tree file. Sends If-None-Match when the cache holds it; a 304 is answered from the cache.
   * Throws NotFound (404/410), TooLarge, or Unreachable after the retries.
   */
  async get(
    path: string,
    maxBytes: number,
    opts: { conditional?: boolean } = {},
  ): Promise<Uint8Array> {
    const url = this.url(path);
    const cached = opts.conditional === false ? undefined : this.opts.cache?.get(path);
    return this.withRetries<Uint8Array>(path, async (signal) => {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (cached) headers['if-none-match'] = cached.etag;
      const res = await send(url, { method: 'GET', agent: this.agent, signal, headers });
      const status = res.statusCode ?? 0;
      if (status === 304 && cached) {
        this.counters.notModified++;
        await drain(res);
        return cached.body;
      }
      if (status === 404 || status === 410) {
        await drain(res);
        throw new NotFound(path);
      }
      if (TRANSIENT_STATUS.has(status)) {
        await drain(res);
        return new Transient(`HTTP ${status}`, header(res, 'retry-after'), status);
      }
      if (status !== 200) {
        // The refusal's own reason (nginx's "revoked", "not-your-manifest") is what an operator needs.
        // A redirect is refused the same way: the tree has one URL.
        const body = await this.readCapped(res, path, 4096).catch(() => new Uint8Array());
        if (status === 400 && NGINX_CERT_ERROR.test(Buffer.from(body).toString('utf8')))
          throw new CertificateRefused(path, this.opts.certFile ?? 'the client certificate');
        const why = refusalReason(body);
        throw new Unreachable(path, `unexpected HTTP ${status}${why ? ` (${why})` : ''}`, status);
      }
      const body = await this.readCapped(res, path, maxBytes);
      const etag = header(res, 'etag');
      if (etag && this.opts.cache) this.opts.cache.put(path, etag, body);
      return body;
    });
  }

  /**
   * POST a JSON body. Returns every final status (2xx and 4xx alike) with its body, so the caller can
   * read the ack endpoint's answers (409 = chain mismatch, with the server's last sequence number).
   * Retries only transient failures.
   */
  async post(
    path: string,
    body: Uint8Array | string,
    maxResponseBytes = 64 * 1024,
  ): Promise<{ status: number; body: Uint8Array }> {
    const url = this.url(path);
    return this.withRetries<{ status: number; body: Uint8Array }>(path, async (signal) => {
      const bytes = Buffer.from(body);
      const res = await send(url, {
        method: 'POST',
        agent: this.agent,
        signal,
        body: bytes,
        headers: { 'content-type': 'application/json', 'content-length': String(bytes.length) },
      });
      const status = res.statusCode ?? 0;
      if (TRANSIENT_STATUS.has(status)) {
        await drain(res);
        return new Transient(`HTTP ${status}`, header(res, 'retry-after'), status);
      }
      return { status, body: await this.readCapped(res, path, maxResponseBytes) };
    });
  }
}
