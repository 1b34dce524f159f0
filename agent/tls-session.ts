// TLS session resumption across runs. A timer-driven agent is a new process every run; without a
// remembered session each run pays a full mTLS handshake (certificate chains both ways, a signature
// each side): most of a steady-state run's bytes on the wire and a good part of its CPU. The latest
// session (a TLS 1.3 ticket) of each control plane box is kept in the state directory and offered by
// the next run's first connection to that box; the server resumes it or, if it is stale, from another
// server, or its ticket keys changed (an nginx reload or restart), silently falls back to a full
// handshake. Sessions are per URL: a ticket is only ever offered to the box that issued it (another box
// could not decrypt it, and would learn nothing it needs).
//
// The file is a secret: a ticket with its resumption secret lets its holder resume a session that
// authenticated as this host, until the server's session timeout (nginx: ssl_session_timeout) ends it.
// So it is as private as the host's TLS key (0600 in the 0700 state directory) and bound to what it was
// made for: each control plane URL and the client certificate (a renewed certificate starts afresh, so a
// resumed session never carries an old certificate's identity). It is volatile: atomic, no fsync; lost
// or damaged, the next run makes a full handshake.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeVolatileFile } from './state-dir.ts';
import type { StateDir } from './state-dir.ts';

export const TLS_SESSION_FILE = 'tls-session.json';

/** A TLS session is a few KB (the server's ticket plus OpenSSL's session state); more is not one. */
const SESSION_LIMIT = 24 * 1024;
/** The file holds one session per configured URL (at most 8, agent/config.ts), base64. */
const SESSION_FILE_LIMIT = 8 * SESSION_LIMIT * 2;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Where the HTTP client gets the session to offer each box and leaves the latest ones (I/O injected). */
export interface TlsSessionStore {
  load(url: string): Buffer | undefined;
  /** The newest session of each box this run talked to; the others' are kept as they were. */
  save(sessions: ReadonlyMap<string, Buffer>): void;
}

/**
 * Reads the file as `{certSha256, sessions: {url: base64}}`; anything else (damaged, the older
 * one-URL format, another certificate) is no sessions at all. Checked by hand rather than by a schema:
 * this runs on every timer run and needs nothing else of zod's.
 */
function readSessions(file: string, certSha256: string): Map<string, string> {
  const out = new Map<string, string>();
  try {
    const bytes = readFileSync(file);
    if (bytes.length > SESSION_FILE_LIMIT) return out;
    const stored = JSON.parse(bytes.toString('utf8')) as unknown;
    if (typeof stored !== 'object' || stored === null) return out;
    const { certSha256: made, sessions } = stored as Record<string, unknown>;
    if (typeof made !== 'string' || !SHA256_HEX.test(made) || made !== certSha256) return out;
    if (typeof sessions !== 'object' || sessions === null || Array.isArray(sessions)) return out;
    for (const [url, s] of Object.entries(sessions))
      if (typeof s === 'string' && s.length > 0 && s.length <= (SESSION_LIMIT * 4) / 3 + 4)
        if (BASE64.test(s)) out.set(url, s);
  } catch {
    /* missing or unreadable: no sessions */
  }
  return out;
}

/**
 * The state directory's session file, for these URLs and this certificate. Anything unreadable, or made
 * for another certificate, is no session: a full handshake, never an error. Sessions of URLs no longer
 * configured are dropped at the next save.
 */
export function tlsSessionStore(
  state: StateDir,
  controlPlaneUrls: string | readonly string[],
  cert: string | Buffer,
): TlsSessionStore {
  const urls = typeof controlPlaneUrls === 'string' ? [controlPlaneUrls] : controlPlaneUrls;
  const certSha256 = createHash('sha256').update(cert).digest('hex');
  const file = state.path(TLS_SESSION_FILE);
  return {
    load(url) {
      if (!urls.includes(url)) return undefined;
      const s = readSessions(file, certSha256).get(url);
      const session = s === undefined ? undefined : Buffer.from(s, 'base64');
      return session && session.length > 0 ? session : undefined;
    },
    save(latest) {
      const sessions: Record<string, string> = {};
      const kept = readSessions(file, certSha256);
      for (const url of urls) {
        const s = latest.get(url);
        if (s && s.length > 0 && s.length <= SESSION_LIMIT) sessions[url] = s.toString('base64');
        else if (kept.has(url)) sessions[url] = kept.get(url)!;
      }
      // writeVolatileFile: temp file created 0600, then renamed over the old one.
      writeVolatileFile(file, JSON.stringify({ certSha256, sessions }) + '\n');
    },
  };
}
