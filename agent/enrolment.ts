// The agent's client certificate, obtained and renewed by the agent itself (docs/architecture.md,
// "Enrolment"). Before a run builds its HTTP client:
//   - no certificate yet and a token file: enrol (POST /enrol with the token, no client certificate);
//   - a certificate past RENEW_AT of its lifetime: renew (POST /enrol over mTLS with it, no token);
//   - otherwise nothing.
// Each attempt sends a CSR for a new key and a request signed by the host key. The new key and CSR are
// kept in the state directory until installed, so an attempt cut short (a crash, a lost answer) is
// retried with the same CSR and gets the certificate the endpoint already reserved for it; the issued
// certificate is stored there first, then the key and the certificate are installed, so a crash between
// the two writes is finished by the next run. A failed renewal is logged and the current certificate
// kept (it still works until it expires); a failed enrolment fails the run (there is nothing to use).
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import {
  envelopeBytes,
  isoTime,
  readEnrolmentToken,
  SCHEMA_VERSION,
  sha256Digest,
  signDocument,
  writeFileAtomic,
  type EnrolmentRequest,
  type SigningKey,
} from '../protocol/index.ts';
import type { AgentConfig } from './config.ts';
import type { Logger } from './log.ts';
import type { StateDir } from './state-dir.ts';

/** Renew once two thirds of the certificate's lifetime have passed: a week-long certificate leaves two days to succeed. */
export const RENEW_AT = 2 / 3;

const PENDING_KEY = 'enrolment-key.pem';
const PENDING_CSR = 'enrolment.csr';
const ISSUED_CERT = 'enrolment-issued.crt';

export class EnrolmentFailed extends Error {
  constructor(
    readonly status: number | null,
    detail: string,
  ) {
    super(`enrolment failed: ${detail}`);
    this.name = 'EnrolmentFailed';
  }
}

export type CertificateStep =
  'valid' | 'enrolled' | 'renewed' | 'renewal-failed' | 'no-certificate';

export interface EnsureCertificateOptions {
  config: AgentConfig;
  state: StateDir;
  hostKey: SigningKey;
  now: number;
  log: Logger;
}

/** Makes sure the agent has a usable client certificate before it talks to the control plane. */
export async function ensureCertificate(o: EnsureCertificateOptions): Promise<CertificateStep> {
  finishInstall(o);
  if (!existsSync(o.config.certFile)) {
    const token = o.config.enrolmentTokenFile;
    if (token === null || !existsSync(token)) return 'no-certificate';
    try {
      await obtain(o, 'enrol', readFileSync(token, 'utf8'));
    } catch (e) {
      o.log.error('certificate-enrolment-failed', {
        tokenFile: token,
        reason: (e as Error).message,
      });
      throw e;
    }
    o.log.info('certificate-enrolled', {
      certFile: o.config.certFile,
      ...certFacts(o.config.certFile),
    });
    return 'enrolled';
  }
  if (!renewalDue(o.config.certFile, o.now)) return 'valid';
  try {
    await obtain(o, 'renew', null);
    o.log.info('certificate-renewed', {
      certFile: o.config.certFile,
      ...certFacts(o.config.certFile),
    });
    return 'renewed';
  } catch (e) {
    o.log.warn('certificate-renewal-failed', {
      ...certFacts(o.config.certFile),
      reason: (e as Error).message,
    });
    return 'renewal-failed';
  }
}

/** Renews now, over mTLS with the current certificate and a new key (throws EnrolmentFailed). */
export async function renewCertificate(o: EnsureCertificateOptions): Promise<void> {
  await obtain(o, 'renew', null);
  o.log.info('certificate-renewed', {
    certFile: o.config.certFile,
    ...certFacts(o.config.certFile),
  });
}

/** True once RENEW_AT of the certificate's lifetime has passed. */
export function renewalDue(certFile: string, now: number): boolean {
  const x = new X509Certificate(readFileSync(certFile));
  const from = Date.parse(x.validFrom);
  const to = Date.parse(x.validTo);
  return now >= from + (to - from) * RENEW_AT;
}

function certFacts(certFile: string): Record<string, string> {
  const x = new X509Certificate(readFileSync(certFile));
  return { serial: x.serialNumber.toUpperCase(), notAfter: new Date(x.validTo).toISOString() };
}

/** One attempt: the pending key and CSR (made once), a fresh signed request, the POST, the install. */
async function obtain(o: EnsureCertificateOptions, kind: 'enrol' | 'renew', token: string | null) {
  const { keyPem, csrPem } = pendingKeyAndCsr(o);
  const nonce = token === null ? null : readEnrolmentToken(token).signed.nonce;
  const doc: EnrolmentRequest = {
    type: 'enrolment-request',
    schemaVersion: SCHEMA_VERSION,
    fleet: fleetOf(o),
    host: o.config.host,
    kind,
    nonce,
    csr: sha256Digest(Buffer.from(csrPem, 'utf8')),
    issuedAt: isoTime(o.now),
  };
  const body = JSON.stringify({
    token,
    request: envelopeBytes(signDocument(doc, [o.hostKey])).toString('utf8'),
    csr: csrPem,
  });
  const answer = await post(o.config, body, kind === 'renew');
  const certificate = checkedCertificate(answer, keyPem, o.config.host);
  // Stored first: from here on a crash is finished by finishInstall, never re-requested.
  writeFileAtomic(o.state.path(ISSUED_CERT), certificate);
  finishInstall(o);
}

/** The new key and its CSR, made once per attempt series (kept until the certificate is installed). */
function pendingKeyAndCsr(o: EnsureCertificateOptions): { keyPem: string; csrPem: string } {
  const keyFile = o.state.path(PENDING_KEY);
  const csrFile = o.state.path(PENDING_CSR);
  if (!existsSync(keyFile) || !existsSync(csrFile)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileAtomic(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, {
      mode: 0o600,
    });
    // The subject is ignored by the endpoint (it sets CN = host, OU = agent); only the key and the
    // CSR's self-signature count.
    const csr = execFileSync(
      'openssl',
      ['req', '-new', '-key', keyFile, '-subj', `/CN=${o.config.host}`],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    writeFileAtomic(csrFile, csr);
  }
  return { keyPem: readFileSync(keyFile, 'utf8'), csrPem: readFileSync(csrFile, 'utf8') };
}

function fleetOf(o: EnsureCertificateOptions): string {
  const root = JSON.parse(readFileSync(o.config.trustRootFile, 'utf8')) as {
    signed: { fleet: string };
  };
  return root.signed.fleet;
}

/** The answer's certificate, if it is for our pending key and this host. */
function checkedCertificate(answer: Record<string, unknown>, keyPem: string, host: string): string {
  const pem = answer['certificate'];
  if (typeof pem !== 'string') throw new EnrolmentFailed(null, 'the answer carries no certificate');
  const x = new X509Certificate(pem);
  const ours = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  if (!x.publicKey.export({ type: 'spki', format: 'der' }).equals(ours))
    throw new EnrolmentFailed(null, 'the certificate returned is not for the key this host sent');
  if (!x.subject.split('\n').includes(`CN=${host}`))
    throw new EnrolmentFailed(
      null,
      `the certificate returned is for ${x.subject.replace(/\n/g, ', ')}, not CN=${host}`,
    );
  return pem;
}

/** Installs a stored issued certificate with its pending key (idempotent), then forgets them. */
function finishInstall(o: EnsureCertificateOptions): void {
  const issued = o.state.path(ISSUED_CERT);
  const keyFile = o.state.path(PENDING_KEY);
  if (!existsSync(issued) || !existsSync(keyFile)) return;
  writeFileAtomic(o.config.keyFile, readFileSync(keyFile), { mode: 0o600 });
  writeFileAtomic(o.config.certFile, readFileSync(issued));
  for (const f of [PENDING_KEY, PENDING_CSR, ISSUED_CERT]) rmSync(o.state.path(f), { force: true });
}

function post(config: AgentConfig, body: string, mtls: boolean): Promise<Record<string, unknown>> {
  const url = new URL(
    'enrol',
    config.controlPlaneUrl.endsWith('/') ? config.controlPlaneUrl : config.controlPlaneUrl + '/',
  );
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: readFileSync(config.caFile),
        ...(mtls ? { cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) } : {}),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: config.requestTimeoutMs,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks)
            .toString('utf8')
            .slice(0, 64 * 1024);
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            // Not JSON (an nginx error page): reported by status below.
          }
          const status = res.statusCode ?? 0;
          if (status === 200 || status === 201) resolve(json);
          else
            reject(
              new EnrolmentFailed(
                status,
                `HTTP ${status} from ${url.href}: ${String(json['error'] ?? '')} ${String(json['reason'] ?? text.trim().slice(0, 200))}`.trim(),
              ),
            );
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new EnrolmentFailed(
          null,
          `no answer from ${url.href} within ${config.requestTimeoutMs} ms`,
        ),
      ),
    );
    req.on('error', (e) =>
      reject(
        e instanceof EnrolmentFailed ? e : new EnrolmentFailed(null, `${url.href}: ${e.message}`),
      ),
    );
    req.end(body);
  });
}
