// The agent's HTTPS client for the control plane: mTLS (client certificate) over a keep-alive agent,
// conditional GETs against an ETag cache, size caps enforced while the body streams in, a timeout per
// request, and retries with exponential backoff and full jitter for transient failures.
// Several control plane boxes (an ordered list of URLs serving the same signed tree): the client sticks
// to the box that last answered (remembered across runs), and a connection error, a timeout or a 5xx
// moves the request to the next box at once; the backoff comes only after every box failed once. No
// box is trusted more than another: everything fetched is verified, and the agent's rollback defence
// refuses an older tree from a lagging box (agent/cycle.ts then moves on to the next box).
// Plain node:https, no fetch library: loading one costs a timer-driven run about as much CPU and memory
// as everything else it does in steady state, and its default headers cost bytes on every request.
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { sha256Hex, TooLarge } from '../protocol/index.ts';
import type { HttpCache } from './http-cache.ts';
import { isLocalStateError } from './state-dir.ts';
import type { TlsSessionStore } from './tls-session.ts';

export interface HttpClientOptions {
  /**
   * Base URL of the tree, e.g. https://cp.example:8443/ (trailing slash optional), or several boxes
   * serving the same tree, in order of preference.
   */
  baseUrl: string | readonly string[];
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
  /** TLS sessions to resume from an earlier run, and where the latest ones are left at close() (agent/tls-session.ts). */
  tlsSession?: TlsSessionStore;
  /** The box that answered last time (tried first), and where the one that answered is left at close(). */
  preferred?: PreferredBoxStore;
  /** Told when a request moves from one box to the next (for the log). */
  onFailover?: (event: { from: string; to: string; reason: string }) => void;
}

/** Which control plane box to try first (agent/control-planes.ts keeps it in the state directory). */
export interface PreferredBoxStore {
  load(): string | undefined;
  save(url: string): void;
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
/**
 * A 429 is this host's own rate limit on that box: another box would not help and the backoff honours
 * its Retry-After. Everything else transient (no connection, timeout, 5xx) is the box's trouble.
 */
const STAY_ON_BOX = new Set([429]);

/**
 * What the ClientHello offers: TLS 1.3 only (the control plane speaks it: nginx's rendered config and the
 * embedded server), so none of TLS 1.2's cipher suites and extensions are listed, and two key-exchange
 * groups (X25519, with P-256 for a server without it) instead of OpenSSL's ten. 349 -> 209 bytes for a
 * new ClientHello, ~140 bytes less in every run (issue 10: a timer-mode run's bytes on the wire). A
 * control plane limited to TLS 1.2 is unreachable for the agent.
 */
const TLS_OFFER = { minVersion: 'TLSv1.3', ecdhCurve: 'X25519:P-256' } as const;

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
    // HTTP/1.1 connections are persistent unless a side says otherwise, so `Connection: keep-alive`
    // (which node adds for a keep-alive agent) says nothing: 24 bytes less on every request. Removing
    // the header keeps the connection for the next request (node: the agent's keep-alive still holds).
    req.removeHeader('connection');
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

/** One control plane box: its base URL and its own keep-alive agent (its own TLS sessions). */
interface Box {
  base: URL;
  url: string;
  agent: CountingAgent | undefined;
  /**
   * Prefix of the ETags this box gave, in the shared ETag cache (several boxes only). ETags are per
   * box (nginx: mtime and size of its own copy), and one box's ETag could match another box's
   * different file (each box writes its own ack bundles): only the box that gave it is asked for it.
   */
  tag: string;
}

function normaliseBase(url: string): URL {
  const base = new URL(url.endsWith('/') ? url : url + '/');
  if (base.protocol !== 'https:') throw new Error(`control plane URL must be https: ${url}`);
  return base;
}

export class HttpClient {
  private readonly counters = { requests: 0, notModified: 0, retries: 0, bodyBytes: 0 };
  private readonly boxes: Box[];
  /** The box requests go to now: the remembered one at first, the next one after a failure. */
  private current: number;
  private readonly preferredAtStart: string | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly random: () => number;

  constructor(private readonly opts: HttpClientOptions) {
    const urls = typeof opts.baseUrl === 'string' ? [opts.baseUrl] : [...opts.baseUrl];
    if (urls.length === 0) throw new Error('no control plane URL');
    this.boxes = urls.map((url) => ({
      base: normaliseBase(url),
      url,
      agent: undefined,
      tag: urls.length === 1 ? '' : sha256Hex(url).slice(0, 16) + ' ',
    }));
    this.preferredAtStart = opts.preferred?.load();
    const remembered = this.boxes.findIndex((b) => b.url === this.preferredAtStart);
    this.current = remembered >= 0 ? remembered : 0;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 3;
    this.backoffBaseMs = opts.backoffBaseMs ?? 250;
    this.backoffMaxMs = opts.backoffMaxMs ?? 5_000;
    this.random = opts.random ?? Math.random;
  }

  /** A box's agent, made on first use (a run that never leaves its box reads one session, makes one agent). */
  private agentOf(box: Box): CountingAgent {
    box.agent ??= new CountingAgent(
      {
        ca: this.opts.ca,
        cert: this.opts.cert,
        key: this.opts.key,
        ...TLS_OFFER,
        keepAlive: true,
        maxSockets: 4,
      },
      this.opts.tlsSession?.load(box.url),
    );
    return box.agent;
  }

  private get agents(): CountingAgent[] {
    return this.boxes.flatMap((b) => (b.agent ? [b.agent] : []));
  }

  /** The configured boxes, in order of preference. */
  get urls(): string[] {
    return this.boxes.map((b) => b.url);
  }

  /** The box requests go to now. */
  get currentUrl(): string {
    return this.boxes[this.current]!.url;
  }

  /**
   * Moves to the next box (after the last, the first again): for a box whose answers were refused (an
   * older or damaged tree), which the transport cannot tell. Returns the new box's URL.
   */
  failover(reason: string): string {
    this.nextBox(reason);
    // The box left behind answered, but with something refused: the next run starts elsewhere.
    if (this.boxes.length > 1) this.answered = this.currentUrl;
    return this.currentUrl;
  }

  private nextBox(reason: string): void {
    const from = this.currentUrl;
    this.current = (this.current + 1) % this.boxes.length;
    if (this.boxes.length > 1) this.opts.onFailover?.({ from, to: this.currentUrl, reason });
  }

  /** TLS bytes on the wire (handshakes included) since the client was created. */
  wireBytes(): number {
    return this.agents.reduce((n, a) => n + a.wireBytes(), 0);
  }

  get stats(): HttpStats {
    const agents = this.agents;
    return {
      ...this.counters,
      connections: agents.reduce((n, a) => n + a.connections, 0),
      resumed: agents.reduce((n, a) => n + a.resumed, 0),
    };
  }

  /**
   * Closes the connections and leaves, for the next run, the newest TLS session of each box and the box
   * that answered last. Both are optimisations: a failure to write them (full disk) costs the next run
   * a full handshake or a detour to a dead box first, nothing more.
   */
  close(): void {
    const sessions = new Map<string, Buffer>();
    for (const b of this.boxes) {
      if (!b.agent) continue;
      b.agent.destroy();
      if (b.agent.sessionChanged && b.agent.latestSession)
        sessions.set(b.url, b.agent.latestSession);
      b.agent.sessionChanged = false;
    }
    try {
      if (this.opts.tlsSession && sessions.size > 0) this.opts.tlsSession.save(sessions);
    } catch {
      /* volatile by design: see above */
    }
    try {
      if (
        this.opts.preferred &&
        this.answered !== undefined &&
        this.answered !== this.preferredAtStart
      )
        this.opts.preferred.save(this.answered);
    } catch {
      /* volatile by design: see above */
    }
  }

  /** The box that gave the latest answer (any status that is not the box's trouble). */
  private answered: string | undefined;

  private checkPath(path: string): void {
    if (path.startsWith('/') || path.split('/').includes('..'))
      throw new Error(`refusing to fetch suspicious path ${path}`);
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

  /**
   * Up to `retries + 1` rounds; a round tries the current box and, when the box is at fault (no
   * connection, timeout, 5xx), each other box once, in order; the backoff comes between rounds. The box
   * that answers becomes the current one for the rest of the run (and the next run: close()).
   */
  private async withRetries<T>(
    path: string,
    attempt: (signal: AbortSignal, box: Box) => Promise<T | Transient>,
  ): Promise<T> {
    let last = 'no attempt';
    let lastStatus: number | undefined;
    let tries = 0;
    for (let round = 0; round <= this.retries; round++) {
      let retryAfter: string | null = null;
      for (let inRound = 0; inRound < this.boxes.length; inRound++) {
        const left = this.timeLeft();
        if (left <= 0)
          throw new Unreachable(
            path,
            `${tries > 0 ? `${last}; ` : ''}the deadline of this request passed`,
            lastStatus,
          );
        if (tries++ > 0) this.counters.retries++;
        const box = this.boxes[this.current]!;
        const ac = new AbortController();
        const timeoutMs = Math.min(this.timeoutMs, left);
        const timer = setTimeout(() => ac.abort(), timeoutMs);
        let moveOn = true;
        try {
          this.counters.requests++;
          const r = await attempt(ac.signal, box);
          if (r instanceof Transient) {
            last = this.boxes.length > 1 ? `${box.url}: ${r.detail}` : r.detail;
            retryAfter = r.retryAfter;
            lastStatus = r.status;
            moveOn = r.status === undefined || !STAY_ON_BOX.has(r.status);
          } else {
            this.answered = box.url;
            return r;
          }
        } catch (e) {
          // A definite refusal (403...) is an answer, not a transient failure: retrying cannot change it.
          // A local failure (the ETag cache on a full disk) is not the network's: no retry, and it keeps its own name.
          if (
            e instanceof TooLarge ||
            e instanceof NotFound ||
            e instanceof Unreachable ||
            isLocalStateError(e)
          ) {
            if (!isLocalStateError(e)) this.answered = box.url;
            throw e;
          }
          const why = ac.signal.aborted
            ? `no complete answer within ${Math.round(timeoutMs)} ms`
            : (e as Error).message;
          last = this.boxes.length > 1 ? `${box.url}: ${why}` : why;
        } finally {
          clearTimeout(timer);
        }
        if (!moveOn || this.boxes.length === 1) break;
        this.nextBox(last);
      }
      if (round < this.retries)
        await new Promise((r) =>
          setTimeout(r, Math.max(0, Math.min(this.backoff(round, retryAfter), this.timeLeft()))),
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
    this.checkPath(path);
    const cached = opts.conditional === false ? undefined : this.opts.cache?.get(path);
    return this.withRetries<Uint8Array>(path, async (signal, box) => {
      // Only what the answer depends on: every header is paid on every request of every timer run.
      const headers: Record<string, string> = {};
      const ours = cached !== undefined && cached.etag.startsWith(box.tag);
      if (ours) headers['if-none-match'] = cached.etag.slice(box.tag.length);
      const res = await send(new URL(path, box.base), {
        method: 'GET',
        agent: this.agentOf(box),
        signal,
        headers,
      });
      const status = res.statusCode ?? 0;
      if (status === 304 && ours) {
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
      if (etag && this.opts.cache) this.opts.cache.put(path, box.tag + etag, body);
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
    this.checkPath(path);
    return this.withRetries<{ status: number; body: Uint8Array }>(path, async (signal, box) => {
      const bytes = Buffer.from(body);
      const res = await send(new URL(path, box.base), {
        method: 'POST',
        agent: this.agentOf(box),
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
