// TLS session resumption across runs. A timer-driven agent is a new process every run; without a
// remembered session each run pays a full mTLS handshake (certificate chains both ways, a signature
// each side): most of a steady-state run's bytes on the wire and a good part of its CPU. The latest
// session (a TLS 1.3 ticket) is kept in the state directory and offered by the next run's first
// connection; the server resumes it or, if it is stale, from another server, or its ticket keys changed
// (an nginx reload or restart), silently falls back to a full handshake.
//
// The file is a secret: a ticket with its resumption secret lets its holder resume a session that
// authenticated as this host, until the server's session timeout (nginx: ssl_session_timeout) ends it.
// So it is as private as the host's TLS key (0600 in the 0700 state directory) and bound to what it was
// made for: the control plane URL and the client certificate (a renewed certificate starts afresh, so a
// resumed session never carries an old certificate's identity). It is volatile: atomic, no fsync; lost
// or damaged, the next run makes a full handshake.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeVolatileFile } from './state-dir.ts';
import type { StateDir } from './state-dir.ts';

export const TLS_SESSION_FILE = 'tls-session.json';

/** A TLS session is a few KB (the server's ticket plus OpenSSL's session state); more is not one. */
const SESSION_FILE_LIMIT = 32 * 1024;

const SessionFile = z.strictObject({
  controlPlaneUrl: z.string().max(2048),
  /** SHA-256 of the client certificate file the session authenticated with. */
  certSha256: z.string().regex(/^[0-9a-f]{64}$/),
  session: z
    .string()
    .max(SESSION_FILE_LIMIT)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/),
});

/** Where the HTTP client gets the session to offer and leaves the latest one (I/O injected). */
export interface TlsSessionStore {
  load(): Buffer | undefined;
  save(session: Buffer): void;
}

/**
 * The state directory's session file, for this URL and this certificate. Anything unreadable, or made
 * for another URL or certificate, is no session: a full handshake, never an error.
 */
export function tlsSessionStore(
  state: StateDir,
  controlPlaneUrl: string,
  cert: string | Buffer,
): TlsSessionStore {
  const certSha256 = createHash('sha256').update(cert).digest('hex');
  const file = state.path(TLS_SESSION_FILE);
  return {
    load() {
      try {
        const bytes = readFileSync(file);
        if (bytes.length > SESSION_FILE_LIMIT * 2) return undefined;
        const stored = SessionFile.parse(JSON.parse(bytes.toString('utf8')));
        if (stored.controlPlaneUrl !== controlPlaneUrl || stored.certSha256 !== certSha256)
          return undefined;
        const session = Buffer.from(stored.session, 'base64');
        return session.length > 0 ? session : undefined;
      } catch {
        return undefined;
      }
    },
    save(session) {
      if (session.length === 0 || session.length > (SESSION_FILE_LIMIT * 3) / 4) return;
      // writeVolatileFile: temp file created 0600, then renamed over the old one.
      writeVolatileFile(
        file,
        JSON.stringify({ controlPlaneUrl, certSha256, session: session.toString('base64') }) + '\n',
      );
    },
  };
}
