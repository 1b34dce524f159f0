// "What needs me now": the overview's first panel. Plain data in (the fleet model, the verified
// timestamp, certificates read from the PKI directory), a list of items out, most severe first, each
// with the evidence it rests on and a link to the list that shows every host concerned.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseIsoTime } from '../protocol/index.ts';
import { DEFAULT_QUARANTINE_HOURS, type FleetModel } from './model.ts';

/** Certificates that expire within this many days are listed (the renewal needs a CA ceremony). */
export const CERT_WARNING_DAYS = 30;
/** Items name at most this many hosts; the link leads to all of them. */
const NAMED_HOSTS = 5;

export interface ExpiringCert {
  /** e.g. `hosts/web-01.crt`, relative to the PKI directory. */
  file: string;
  subject: string;
  notAfter: number;
}

export class PkiDirError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = 'PkiDirError';
  }
}

/**
 * The certificates of a PKI directory (control-plane/pki.ts layout: ca.crt, server.crt, hosts/*.crt,
 * operators/*.crt) that expire within CERT_WARNING_DAYS of `now` or already have, soonest first.
 */
export function expiringCerts(pkiDir: string, now: number): ExpiringCert[] {
  if (!existsSync(join(pkiDir, 'ca.crt')))
    throw new PkiDirError(pkiDir, 'not a PKI directory (no ca.crt; see `nixfleet pki init`)');
  const files = ['ca.crt', 'server.crt'].filter((f) => existsSync(join(pkiDir, f)));
  for (const sub of ['hosts', 'operators']) {
    if (!existsSync(join(pkiDir, sub))) continue;
    for (const f of readdirSync(join(pkiDir, sub)).sort())
      if (f.endsWith('.crt')) files.push(`${sub}/${f}`);
  }
  const out: ExpiringCert[] = [];
  for (const file of files) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(readFileSync(join(pkiDir, file)));
    } catch (e) {
      throw new PkiDirError(join(pkiDir, file), `not a PEM certificate (${(e as Error).message})`);
    }
    const notAfter = Date.parse(cert.validTo);
    if (notAfter - now <= CERT_WARNING_DAYS * 86400_000)
      out.push({ file, subject: cert.subject.replace(/\n/g, ', '), notAfter });
  }
  return out.sort((a, b) => a.notAfter - b.notAfter || (a.file < b.file ? -1 : 1));
}

export type Severity = 'bad' | 'warn';

export interface AttentionItem {
  severity: Severity;
  /** Stable key (tests, anchors): halted-channel, failed, quarantined, failing-controls, deferred, offline-blocking, over-budget, refresh-overdue, cert-expiring. */
  kind: string;
  title: string;
  /** Evidence: who and why, in a line. */
  detail: string;
  hosts: string[];
  /** Relative to the site root: where every host or fact concerned is listed. */
  href: string | null;
}

function named(hosts: readonly string[]): string {
  return hosts.length <= NAMED_HOSTS
    ? hosts.join(', ')
    : `${hosts.slice(0, NAMED_HOSTS).join(', ')} and ${hosts.length - NAMED_HOSTS} more`;
}

export function attentionItems(
  m: FleetModel,
  certs: readonly ExpiringCert[] | null,
): AttentionItem[] {
  const items: AttentionItem[] = [];
  for (const c of m.view.channels) {
    if (c.state === 'halted')
      items.push({
        severity: 'bad',
        kind: 'halted-channel',
        title: `channel ${c.channel} is halted`,
        detail: c.reason,
        hosts: [],
        href: `channels/${c.channel}.html`,
      });
  }
  const failed = m.hosts.filter((h) => h.phase === 'failed');
  if (failed.length > 0)
    items.push({
      severity: 'bad',
      kind: 'failed',
      title: `${failed.length} failed host(s)`,
      detail: named(failed.map((h) => h.host)),
      hosts: failed.map((h) => h.host),
      href: 'lists/phase-failed_1.html',
    });
  if (m.quarantines.size > 0) {
    const hosts = [...m.quarantines.keys()];
    items.push({
      severity: 'bad',
      kind: 'quarantined',
      title: `${hosts.length} host(s) quarantined a closure`,
      detail:
        `signed failed/rolled-back acks within the last ${DEFAULT_QUARANTINE_HOURS} h ` +
        `(the agent's default quarantine; its config may differ): ${named(hosts)}`,
      hosts,
      href: 'lists/quarantined_1.html',
    });
  }
  for (const b of m.view.budgets) {
    if (b.inFlight > b.max)
      items.push({
        severity: 'bad',
        kind: 'over-budget',
        title: `disruption budget ${b.id}: ${b.inFlight} in flight, max ${b.max}`,
        detail: named(b.inFlightHosts),
        hosts: b.inFlightHosts,
        href: 'index.html#budgets',
      });
  }
  // Offline beyond the wave's excuse limit (not excused) in a wave that has not completed: the wave
  // cannot complete until the host reports (a wave's blockingHosts names only the first few).
  const openWaves = new Set(
    m.view.channels.flatMap((c) =>
      c.waves
        .filter((w) => w.state === 'active' || w.state === 'soaking')
        .map((w) => `${c.channel}/${w.index}`),
    ),
  );
  const offline = m.hosts.filter(
    (h) => h.phase === 'offline' && !h.excused && openWaves.has(`${h.channel}/${h.wave}`),
  );
  if (offline.length > 0)
    items.push({
      severity: 'bad',
      kind: 'offline-blocking',
      title: `${offline.length} offline host(s) blocking an active wave`,
      detail: named(offline.map((h) => `${h.host} (${h.channel} wave ${h.wave})`)),
      hosts: offline.map((h) => h.host),
      href: 'lists/phase-offline_1.html',
    });
  // Enforce channels: a failing control fails the activation there, so it is the operator's now.
  const failingControls = [...m.compliance]
    .filter(([, c]) => c.mode === 'enforce')
    .map(([host, c]) => ({ host, failing: c.controls.filter((x) => x.status === 'failing') }))
    .filter((x) => x.failing.length > 0);
  if (failingControls.length > 0)
    items.push({
      severity: 'bad',
      kind: 'failing-controls',
      title: `${failingControls.length} host(s) failing compliance controls in enforce channels`,
      detail: named(
        failingControls.map(
          (x) => `${x.host} (${x.failing.map((f) => `${f.framework}/${f.control}`).join(', ')})`,
        ),
      ),
      hosts: failingControls.map((x) => x.host),
      href:
        failingControls.length === 1
          ? (m.byHost.get(failingControls[0]!.host)?.href ?? 'hosts.html')
          : 'hosts.html',
    });
  const deferred = m.hosts.filter((h) => h.phase === 'deferred');
  if (deferred.length > 0)
    items.push({
      severity: 'warn',
      kind: 'deferred',
      title: `${deferred.length} deferred host(s) waiting for a reboot or maintenance window`,
      detail: named(
        deferred.map((h) => `${h.host}${h.latest?.reason ? `: ${h.latest.reason}` : ''}`),
      ),
      hosts: deferred.map((h) => h.host),
      href: 'lists/phase-deferred_1.html',
    });
  const ts = m.release.timestamp;
  const issued = parseIsoTime(ts.issuedAt);
  const expires = parseIsoTime(ts.expires);
  // The same rule as the banner: past three quarters of its life the scheduled re-sign has been missed.
  if (m.now - issued > 0.75 * (expires - issued))
    items.push({
      severity: m.now >= expires ? 'bad' : 'warn',
      kind: 'refresh-overdue',
      title: 'the timestamp refresh is overdue',
      detail:
        `timestamp.json signed ${new Date(issued).toISOString()}, ` +
        `expires ${new Date(expires).toISOString()}: run or check the scheduled ` +
        `\`nixfleet refresh\``,
      hosts: [],
      href: 'documents.html',
    });
  for (const c of certs ?? []) {
    items.push({
      severity: c.notAfter <= m.now ? 'bad' : 'warn',
      kind: 'cert-expiring',
      title: `certificate ${c.file} ${c.notAfter <= m.now ? 'has expired' : 'expires soon'}`,
      detail: `${c.subject}, not valid after ${new Date(c.notAfter).toISOString()}`,
      hosts: [],
      href: null,
    });
  }
  const rank = (i: AttentionItem) => (i.severity === 'bad' ? 0 : 1);
  return items
    .map((item, i) => ({ item, i }))
    .sort((a, b) => rank(a.item) - rank(b.item) || a.i - b.i)
    .map((x) => x.item);
}
