// Who is asking: the verified client certificate's CN (host or operator name), OU (agent / operator)
// and serial. Standalone, it comes from our own TLS handshake; behind nginx, from the headers nginx sets
// after verifying the certificate, which are trusted only on a loopback or unix-socket connection.
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface ClientIdentity {
  cn: string;
  ou: string | null;
  /** Uppercase hex; null when unknown. */
  serial: string | null;
}

export const IDENTITY_HEADERS = {
  verify: 'x-ssl-client-verify',
  dn: 'x-ssl-client-s-dn',
  serial: 'x-ssl-client-serial',
} as const;

function single(v: string | string[] | undefined): string | null {
  if (typeof v === 'string') return v;
  return null; // absent, or several values (ambiguous): no identity
}

export function identityFromTls(socket: TLSSocket): ClientIdentity | null {
  if (!socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.subject) return null;
  const subject = cert.subject as unknown as Record<string, string | string[] | undefined>;
  const cn = single(subject['CN']);
  if (!cn) return null;
  return {
    cn,
    ou: single(subject['OU']),
    serial: cert.serialNumber ? cert.serialNumber.toUpperCase() : null,
  };
}

/** Parses an RFC 2253 DN as nginx prints $ssl_client_s_dn ("CN=web1,OU=agent,O=fleet"). */
export function parseDn(dn: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let i = 0;
  while (i < dn.length) {
    let key = '';
    while (i < dn.length && dn[i] !== '=') key += dn[i++];
    i++;
    let value = '';
    while (i < dn.length && dn[i] !== ',' && dn[i] !== '+') {
      if (dn[i] === '\\' && i + 1 < dn.length) {
        value += dn[i + 1];
        i += 2;
      } else value += dn[i++];
    }
    i++;
    const k = key.trim().toUpperCase();
    out.set(k, [...(out.get(k) ?? []), value]);
  }
  return out;
}

export function identityFromProxyHeaders(headers: IncomingHttpHeaders): ClientIdentity | null {
  if (single(headers[IDENTITY_HEADERS.verify]) !== 'SUCCESS') return null;
  const dn = single(headers[IDENTITY_HEADERS.dn]);
  if (!dn) return null;
  const parts = parseDn(dn);
  const cns = parts.get('CN') ?? [];
  const ous = parts.get('OU') ?? [];
  if (cns.length !== 1 || ous.length > 1) return null;
  const serial = single(headers[IDENTITY_HEADERS.serial]);
  return {
    cn: cns[0] as string,
    ou: ous[0] ?? null,
    serial: serial && /^[0-9A-Fa-f]+$/.test(serial) ? serial.toUpperCase() : null,
  };
}

export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

/** A connection over which nginx's identity headers may be believed. */
export function isTrustedProxyConnection(socket: Socket): boolean {
  // A unix-socket connection has no remote address; only the local filesystem can reach it.
  if (socket.remoteAddress === undefined && socket.remoteFamily === undefined) return true;
  return isLoopbackAddress(socket.remoteAddress);
}

/**
 * Per-host authorisation of a tree-relative path (segments already normalised). Mirrors the nginx
 * config: operators read everything; the dashboard is for operators only; a host reads its own
 * manifest and not another host's; shared documents, plans, bundles and acks are readable by any host.
 * Returns the reason for refusal, or null when allowed.
 */
export function authorizePath(id: ClientIdentity, segments: readonly string[]): string | null {
  if (id.ou === 'operator') return null;
  if (id.ou !== 'agent')
    return `certificate OU ${JSON.stringify(id.ou)} is neither agent nor operator`;
  if (segments[0] === 'dashboard') return 'the dashboard is for operator certificates only';
  if (segments[0] === 'metrics') return 'metrics are for operator certificates only';
  if (segments.length === 4 && segments[0] === 'releases' && segments[2] === 'hosts') {
    if (segments[3] !== `${id.cn}.json`)
      return `host ${id.cn} may not read another host's manifest`;
  }
  return null;
}
