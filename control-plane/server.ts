// The embedded control plane (zero-setup default): one node:https server that serves the installed tree
// and accepts acks at POST /acks, with client certificates required everywhere except /nix-cache/ (as in
// the nginx config: Nix 2.x cannot present a client certificate and checks narinfo signatures itself). And the standalone ack
// endpoint, which either terminates mTLS itself or sits behind nginx on loopback / a unix socket.
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { statSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  LIMITS,
  NIX_CACHE_DIR,
  TIMESTAMP_PATH,
  type SignedRoot,
  PROMETHEUS_CONTENT_TYPE,
} from '../protocol/index.ts';
import { AckService, type AckResponse } from './ack-service.ts';
import type { RateLimitOptions } from './rate-limit.ts';
import {
  authorizePath,
  identityFromProxyHeaders,
  identityFromTls,
  isLoopbackAddress,
  isTrustedProxyConnection,
  type ClientIdentity,
} from './identity.ts';
import {
  loadReleaseView,
  loadVerifiedReleaseView,
  normalizeSerial,
  type ReleaseView,
} from './release-view.ts';
import { normalizeRequestPath, sendError, serveFile } from './static-files.ts';
import { ackLogDir, servedRoot } from './tree-dir.ts';
import { ControlPlaneMetrics, routeOf } from './metrics.ts';

export interface TlsMaterial {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
  /** Optional CRL (PEM) checked in the handshake, in addition to the signed revocations. */
  crl?: string | Buffer;
}

export interface AckOptions {
  groupCommit?: boolean;
  rateLimit?: RateLimitOptions | false;
  debounceMs?: number;
}

export type EventLog = (event: Record<string, unknown>) => void;

interface CommonOptions {
  /** The control plane's tree directory (see tree-dir.ts). */
  treeDir: string;
  /** Directory of the ack log (default <treeDir>/.ack-log: a dotfile, never served). */
  ackLogDir?: string;
  ack?: AckOptions;
  /**
   * With a pinned root, a tree is used only after the release walk verifies it, and the view is built
   * from the documents it verified. Trees installed by `cp sync` were verified before the swap; this
   * is for serving a directory directly.
   */
  pinnedRoot?: SignedRoot;
  /** How often to look for a newly installed tree (ms, default 1000). */
  reloadIntervalMs?: number;
  log?: EventLog;
}

export interface ControlPlaneOptions extends CommonOptions {
  tls: TlsMaterial;
  host?: string;
  port?: number;
}

export interface RunningServer {
  port: number;
  url: string;
  primed: () => boolean;
  view: () => ReleaseView | null;
  /** Re-reads the installed tree now (cp sync in the same process calls this); without a pinned root the view is swapped before this returns. */
  reload: () => Promise<void>;
  ackService: AckService;
  metrics: ControlPlaneMetrics;
  close: () => Promise<void>;
}

/** Tracks the installed tree and hands each new release view to the ack service. */
class ReleaseWatcher {
  private signature = '';
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: CommonOptions,
    private readonly svc: AckService,
  ) {}

  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.opts.reloadIntervalMs ?? 1000);
    this.timer.unref();
  }

  /** Without a pinned root everything happens before the first await: the view is set synchronously. */
  async check(): Promise<void> {
    const root = servedRoot(this.opts.treeDir);
    let sig = 'none';
    if (root && existsSync(join(root, TIMESTAMP_PATH))) {
      const st = statSync(join(root, TIMESTAMP_PATH));
      sig = `${root}:${st.ino}:${st.mtimeMs}:${st.size}`;
    }
    if (sig === this.signature) return;
    this.signature = sig;
    if (!root || sig === 'none') {
      if (this.svc.primed) this.opts.log?.({ event: 'unprimed', reason: 'no installed tree' });
      this.svc.setView(null);
      return;
    }
    try {
      const view = this.opts.pinnedRoot
        ? (await loadVerifiedReleaseView(root, this.opts.pinnedRoot, Date.now())).view
        : loadReleaseView(root);
      // A newer tree may have been seen while this one was being verified: the newer check wins.
      if (sig !== this.signature) return;
      this.svc.setView(view);
      this.opts.log?.({
        event: 'primed',
        release: view.releaseVersion,
        hosts: view.hosts.size,
        root,
      });
    } catch (e) {
      // Keep serving the previous release view, if any: a tree being replaced is not a reason to stop.
      this.opts.log?.({ event: 'tree-refused', root, error: (e as Error).message });
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/** Reads a request body up to `limit` bytes; null when larger (the rest is not read). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) return resolve(null);
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function sendAckResponse(res: ServerResponse, r: AckResponse, closeAfter = false): void {
  const body = JSON.stringify(r.body) + '\n';
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  if (r.retryAfter !== undefined) headers['retry-after'] = r.retryAfter;
  if (closeAfter) headers['connection'] = 'close';
  res.writeHead(r.status, headers);
  res.end(body);
}

async function handleAckPost(
  req: IncomingMessage,
  res: ServerResponse,
  svc: AckService,
  identity: ClientIdentity | null,
  metrics: ControlPlaneMetrics,
): Promise<void> {
  const answer = (r: AckResponse, closeAfter = false) => {
    metrics.recordAck(r);
    sendAckResponse(res, r, closeAfter);
  };
  if (!svc.primed)
    return answer(
      {
        status: 503,
        retryAfter: 5,
        body: { error: 'NotPrimed', reason: 'no verified release is installed yet' },
      },
      true,
    );
  const body = await readBody(req, LIMITS.ack);
  if (body === null) {
    // The unread rest of an oversized body would be parsed as the next request: close the connection.
    return answer(
      { status: 413, body: { error: 'TooLarge', reason: `ack body exceeds ${LIMITS.ack} bytes` } },
      true,
    );
  }
  answer(await svc.submit(body, identity));
}

function isMetricsPath(url: string | undefined): boolean {
  return (url ?? '').split('?')[0] === '/metrics';
}

/** GET /metrics, for a verified operator certificate only (the caller checked revocation). */
function handleMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  svc: AckService,
  metrics: ControlPlaneMetrics,
  id: ClientIdentity | null,
): void {
  if (!id)
    return sendError(
      res,
      403,
      'NoClientIdentity',
      'a verified client certificate with a CN is required',
    );
  if (id.ou !== 'operator')
    return sendError(res, 403, 'Forbidden', 'metrics are for operator certificates only');
  if (req.method !== 'GET' && req.method !== 'HEAD')
    return sendError(res, 405, 'MethodNotAllowed', 'GET /metrics', { allow: 'GET, HEAD' });
  const body = metrics.render(svc, Date.now());
  res.writeHead(200, {
    'content-type': PROMETHEUS_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Counts every answered request by route and status (request rates for /metrics) when its status is
 * committed: writeHead runs once per response (end() or write() call it when a handler did not) and
 * before any byte of it is sent, so whoever has seen an answer finds it counted. ('finish' came after
 * the last write completed: a client, on a loaded machine, could read the answer and be done first.)
 */
function countRequest(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: ControlPlaneMetrics,
): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: Parameters<typeof writeHead>) {
    const committed = writeHead.apply(this, args);
    metrics.recordRequest(routeOf(normalizeRequestPath(req.url ?? '')), this.statusCode);
    return committed;
  } as typeof writeHead;
}

function isAckPath(url: string | undefined): boolean {
  const u = url ?? '';
  const path = u.split('?')[0];
  return path === '/acks' || path === '/acks/';
}

function unprimed(res: ServerResponse): void {
  sendError(res, 503, 'NotPrimed', 'no verified release is installed yet', { 'retry-after': '5' });
}

function revocationRefusal(view: ReleaseView, id: ClientIdentity): string | null {
  if (id.serial !== null && view.revokedSerials.has(normalizeSerial(id.serial)))
    return `client certificate serial ${id.serial} is revoked`;
  if (id.ou === 'agent' && view.revokedHosts.has(id.cn)) return `host ${id.cn} is revoked`;
  return null;
}

async function openAckService(opts: CommonOptions): Promise<AckService> {
  const svc = await AckService.open({
    logDir: opts.ackLogDir ?? ackLogDir(opts.treeDir),
    publishRoot: opts.treeDir,
    groupCommit: opts.ack?.groupCommit,
    rateLimit: opts.ack?.rateLimit,
    debounceMs: opts.ack?.debounceMs,
    log: opts.log,
  });
  if (svc.recoveredCutBytes > 0)
    opts.log?.({
      event: 'ack-log-recovered',
      records: svc.recoveredRecords,
      cutBytes: svc.recoveredCutBytes,
    });
  opts.log?.({ event: 'ack-log-opened', ...svc.startup });
  return svc;
}

export function listen(
  server: HttpServer | HttpsServer,
  port: number,
  host: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export function closeServer(server: HttpServer | HttpsServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function runningServer(
  port: number,
  url: string,
  server: HttpServer | HttpsServer,
  svc: AckService,
  watcher: ReleaseWatcher,
  metrics: ControlPlaneMetrics,
): RunningServer {
  return {
    metrics,
    port,
    url,
    primed: () => svc.primed,
    view: () => svc.releaseView,
    reload: () => watcher.check(),
    ackService: svc,
    close: async () => {
      watcher.stop();
      await closeServer(server);
      await svc.close();
    },
  };
}

/** The embedded control plane: static tree + POST /acks over mTLS; /nix-cache/ open (see the file comment). */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<RunningServer> {
  const svc = await openAckService(opts);
  const watcher = new ReleaseWatcher(opts, svc);
  const metrics = new ControlPlaneMetrics();
  await watcher.start();
  // The certificate is requested but not required in the handshake (nginx's `ssl_verify_client optional`):
  // TLS decides per connection, the route per request. Every route but /nix-cache/ then requires
  // identityFromTls, which accepts only a certificate that verified against the CA and the CRL.
  const server = createHttpsServer({
    ca: opts.tls.ca,
    cert: opts.tls.cert,
    key: opts.tls.key,
    crl: opts.tls.crl,
    requestCert: true,
    rejectUnauthorized: false,
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    countRequest(req, res, metrics);
    handleRequest(req, res).catch((e) => {
      opts.log?.({ event: 'request-failed', url: req.url, error: (e as Error).message });
      if (!res.headersSent) sendError(res, 500, 'Internal', 'internal error');
      else res.destroy();
    });
  });

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const view = svc.releaseView;
    if (!view) return unprimed(res);
    // Decided on the normalised path, so "/nix-cache/../releases/..." (refused by the normaliser) or
    // "/nix-cache%2f.." can never reach anything outside nix-cache/ without a certificate.
    const cacheSegments = normalizeRequestPath(req.url ?? '');
    if (cacheSegments && cacheSegments[0] === NIX_CACHE_DIR && !isAckPath(req.url)) {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return sendError(res, 405, 'MethodNotAllowed', 'the binary cache is read-only', {
          allow: 'GET, HEAD',
        });
      const root = servedRoot(opts.treeDir);
      if (!root) return unprimed(res);
      // Rooted at nix-cache/ itself: a symlink in the cache pointing elsewhere in the tree is refused.
      return cacheSegments.length < 2
        ? sendError(res, 404, 'NotFound', 'no such document')
        : serveFile(req, res, join(root, NIX_CACHE_DIR), cacheSegments.slice(1));
    }
    const id = identityFromTls(req.socket as TLSSocket);
    if (!id)
      return sendError(
        res,
        403,
        'NoClientIdentity',
        'a verified client certificate with a CN is required',
      );
    const revoked = revocationRefusal(view, id);
    if (revoked) return sendError(res, 403, 'Revoked', revoked);
    if (isAckPath(req.url)) {
      if (req.method !== 'POST')
        return sendError(res, 405, 'MethodNotAllowed', 'POST one signed ack to /acks', {
          allow: 'POST',
        });
      return handleAckPost(req, res, svc, id, metrics);
    }
    if (isMetricsPath(req.url)) return handleMetrics(req, res, svc, metrics, id);
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return sendError(res, 405, 'MethodNotAllowed', 'the tree is read-only', {
        allow: 'GET, HEAD',
      });
    const segments = normalizeRequestPath(req.url ?? '');
    if (!segments) return sendError(res, 404, 'NotFound', 'no such document');
    const denied = authorizePath(id, segments);
    if (denied) return sendError(res, 403, 'Forbidden', denied);
    const root = segments[0] === 'acks' ? opts.treeDir : servedRoot(opts.treeDir);
    if (!root) return unprimed(res);
    return serveFile(req, res, root, segments);
  }

  const port = await listen(server, opts.port ?? 0, opts.host ?? '127.0.0.1');
  return runningServer(
    port,
    `https://${opts.host ?? '127.0.0.1'}:${port}`,
    server,
    svc,
    watcher,
    metrics,
  );
}

export interface AckEndpointOptions extends CommonOptions {
  /** Terminate mTLS here (standalone). Without it, the endpoint trusts nginx's identity headers. */
  tls?: TlsMaterial;
  host?: string;
  port?: number;
  /** Listen on a unix socket instead of host:port (behind nginx only). */
  socketPath?: string;
}

/**
 * Behind nginx the client identity comes from headers, which only a local proxy may set: without TLS of
 * its own the endpoint listens on loopback or a unix socket only.
 */
function refuseExposedProxyListener(opts: AckEndpointOptions, host: string): void {
  if (opts.tls || opts.socketPath || isLoopbackAddress(host) || host === 'localhost') return;
  throw new Error(
    `refusing to trust client identity headers on ${host}: behind nginx the ack ` +
      `endpoint listens on loopback or a unix socket only (or give it TLS material ` +
      `to terminate mTLS itself)`,
  );
}

/**
 * The ack endpoint alone: POST /acks (and GET /metrics for operators), standalone mTLS or behind nginx
 * (loopback / unix socket).
 */
export async function startAckEndpoint(opts: AckEndpointOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  refuseExposedProxyListener(opts, host);
  const svc = await openAckService(opts);
  const watcher = new ReleaseWatcher(opts, svc);
  const metrics = new ControlPlaneMetrics();
  await watcher.start();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    countRequest(req, res, metrics);
    const run = async () => {
      if (!svc.primed) return unprimed(res);
      const metricsRoute = isMetricsPath(req.url);
      if (!isAckPath(req.url) && !metricsRoute)
        return sendError(
          res,
          404,
          'NotFound',
          'this endpoint only accepts POST /acks and GET /metrics',
        );
      if (!metricsRoute && req.method !== 'POST')
        return sendError(res, 405, 'MethodNotAllowed', 'POST one signed ack to /acks', {
          allow: 'POST',
        });
      let id: ClientIdentity | null;
      if (opts.tls) id = identityFromTls(req.socket as TLSSocket);
      else if (isTrustedProxyConnection(req.socket)) id = identityFromProxyHeaders(req.headers);
      else
        return sendError(
          res,
          403,
          'UntrustedProxy',
          'identity headers are accepted only over loopback or a unix socket',
        );
      if (metricsRoute) {
        const revoked = id ? revocationRefusal(svc.releaseView!, id) : null;
        if (revoked) return sendError(res, 403, 'Revoked', revoked);
        return handleMetrics(req, res, svc, metrics, id);
      }
      return handleAckPost(req, res, svc, id, metrics);
    };
    run().catch((e) => {
      opts.log?.({ event: 'request-failed', url: req.url, error: (e as Error).message });
      if (!res.headersSent) sendError(res, 500, 'Internal', 'internal error');
      else res.destroy();
    });
  };
  const server = opts.tls
    ? createHttpsServer(
        {
          ca: opts.tls.ca,
          cert: opts.tls.cert,
          key: opts.tls.key,
          crl: opts.tls.crl,
          requestCert: true,
          rejectUnauthorized: true,
        },
        handler,
      )
    : createHttpServer(handler);
  server.keepAliveTimeout = 65_000;
  let port = 0;
  let url: string;
  if (opts.socketPath) {
    if (existsSync(opts.socketPath)) unlinkSync(opts.socketPath);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.socketPath, () => resolve());
    });
    url = `unix:${opts.socketPath}`;
  } else {
    port = await listen(server, opts.port ?? 0, host);
    url = `${opts.tls ? 'https' : 'http'}://${host}:${port}`;
  }
  return runningServer(port, url, server, svc, watcher, metrics);
}
