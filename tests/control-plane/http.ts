// Minimal HTTPS/HTTP client for control-plane tests: one request, full response, no keep-alive.
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface Resp {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface ReqOptions {
  method?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  tls?: { ca: string; cert?: string; key?: string };
  socketPath?: string;
  /** Sent as is (URL parsing would normalise ../ away). */
  rawPath?: string;
}

export function req(url: string, o: ReqOptions = {}): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const opts = {
      method: o.method ?? 'GET',
      headers: {
        ...(o.body !== undefined ? { 'content-length': String(Buffer.byteLength(o.body)) } : {}),
        ...o.headers,
      },
      agent: false as const,
      ...(o.socketPath ? { socketPath: o.socketPath } : {}),
      ...(o.tls ? { ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key } : {}),
    };
    const all = {
      ...opts,
      hostname: u.hostname,
      port: u.port,
      path: o.rawPath ?? u.pathname + u.search,
    };
    const r = (u.protocol === 'https:' ? httpsRequest : httpRequest)(all, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    r.on('error', reject);
    r.setTimeout(10_000, () => r.destroy(new Error(`timeout: ${url}`)));
    if (o.body !== undefined) r.write(o.body);
    r.end();
  });
}

/** Resolves to the error (e.g. a refused TLS handshake), or throws if the request got an answer. */
export async function refused(url: string, o: ReqOptions = {}): Promise<Error> {
  try {
    const r = await req(url, o);
    throw new Error(`expected the connection to be refused, got HTTP ${r.status}`);
  } catch (e) {
    if ((e as Error).message.startsWith('expected the connection')) throw e;
    return e as Error;
  }
}
