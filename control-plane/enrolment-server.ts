// `nixfleet enrol serve`: the enrolment endpoint as its own process, behind nginx (POST /enrol). It is
// a separate process from the ack endpoint on purpose: it holds the issuing CA key, the only signing key
// on the control-plane side, and nothing else there needs it. Plain HTTP on loopback or a unix socket
// only; the client identity (renewal) comes from nginx's X-SSL-Client-* headers and the presented
// certificate from X-SSL-Client-Cert ($ssl_client_escaped_cert), believed only over loopback / the socket.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, unlinkSync } from 'node:fs';
import { LIMITS } from '../protocol/index.ts';
import {
  EnrolmentService,
  type EnrolmentAnswer,
  type EnrolmentServiceOptions,
} from './enrolment.ts';
import {
  identityFromProxyHeaders,
  isLoopbackAddress,
  isTrustedProxyConnection,
} from './identity.ts';
import { closeServer, listen, readBody } from './server.ts';
import { sendError } from './static-files.ts';

export const ENROL_PATH = '/enrol';
export const CLIENT_CERT_HEADER = 'x-ssl-client-cert';

export interface EnrolmentEndpointOptions extends EnrolmentServiceOptions {
  host?: string;
  port?: number;
  socketPath?: string;
}

export interface RunningEnrolmentEndpoint {
  url: string;
  port: number;
  service: EnrolmentService;
  close: () => Promise<void>;
}

/** The PEM nginx passes (URL-encoded), or null when there is none or it is not one certificate. */
function presentedCertificate(req: IncomingMessage): string | null {
  const v = req.headers[CLIENT_CERT_HEADER];
  if (typeof v !== 'string' || v === '') return null;
  let pem: string;
  try {
    pem = decodeURIComponent(v);
  } catch {
    return null;
  }
  return /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/.test(pem)
    ? pem
    : null;
}

function send(res: ServerResponse, a: EnrolmentAnswer): void {
  const body = JSON.stringify(a.body) + '\n';
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  if (a.retryAfter !== undefined) headers['retry-after'] = a.retryAfter;
  res.writeHead(a.status, headers);
  res.end(body);
}

export async function startEnrolmentEndpoint(
  o: EnrolmentEndpointOptions,
): Promise<RunningEnrolmentEndpoint> {
  const host = o.host ?? '127.0.0.1';
  if (!o.socketPath && !isLoopbackAddress(host) && host !== 'localhost')
    throw new Error(
      `refusing to listen on ${host}: the enrolment endpoint trusts nginx's identity headers, so it listens on loopback or a unix socket only`,
    );
  const service = new EnrolmentService(o);
  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      o.log?.({ event: 'request-failed', url: req.url, error: (e as Error).message });
      if (!res.headersSent) sendError(res, 500, 'Internal', 'internal error');
      else res.destroy();
    });
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if ((req.url ?? '').split('?')[0] !== ENROL_PATH)
      return sendError(res, 404, 'NotFound', `this endpoint only accepts POST ${ENROL_PATH}`);
    if (req.method !== 'POST')
      return sendError(res, 405, 'MethodNotAllowed', `POST ${ENROL_PATH}`, { allow: 'POST' });
    if (!isTrustedProxyConnection(req.socket))
      return sendError(
        res,
        403,
        'UntrustedProxy',
        'only nginx on loopback or the socket may call this',
      );
    const body = await readBody(req, LIMITS.enrolmentRequest);
    if (body === null) {
      res.setHeader('connection', 'close');
      return sendError(res, 413, 'TooLarge', `body exceeds ${LIMITS.enrolmentRequest} bytes`);
    }
    const identity = identityFromProxyHeaders(req.headers);
    send(res, await service.handle(body, identity, identity ? presentedCertificate(req) : null));
  }
  let port = 0;
  let url: string;
  if (o.socketPath) {
    if (existsSync(o.socketPath)) unlinkSync(o.socketPath);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.socketPath, () => resolve());
    });
    url = `unix:${o.socketPath}`;
  } else {
    port = await listen(server, o.port ?? 0, host);
    url = `http://${host}:${port}`;
  }
  return {
    url,
    port,
    service,
    close: async () => {
      await closeServer(server);
      service.close();
    },
  };
}
