// The control plane's /metrics for operators (Prometheus text format, protocol/prometheus.ts), served
// by the embedded server and by the ack endpoint behind nginx, to operator certificates only:
//   nixfleet_cp_acks_total{result="accepted|refused",reason}  every POST /acks answer since start
//   nixfleet_cp_requests_total{route,code}                   every request answered (rates: rate() of it)
//   nixfleet_cp_release_version / _revocations_version
//   nixfleet_cp_timestamp_expiry_timestamp_seconds / _timestamp_expires_in_seconds
//   nixfleet_cp_hosts{channel,phase}                         hosts by phase per channel, from the
//                                                            latest accepted ack of each (reconciler/phase.ts)
//   nixfleet_cp_primed, nixfleet_cp_ack_log_appends_total, nixfleet_cp_ack_log_syncs_total
// Counters live in memory (they restart at 0 with the process, as Prometheus counters may).
import {
  parseIsoTime,
  type Ack,
  renderMetrics,
  type MetricFamily,
  type Sample,
} from '../protocol/index.ts';
import {
  DEFAULT_TOLERANCES,
  derivePhase,
  phaseParams,
  type HostPhase,
  HOST_PHASES,
} from '../reconciler/index.ts';
import type { AckResponse, AckService } from './ack-service.ts';
import type { ReleaseView } from './release-view.ts';

/** Bounded label sets: a route is one of these, whatever path was asked for. */
export type Route = 'tree' | 'acks' | 'nix-cache' | 'dashboard' | 'metrics' | 'other';

export function routeOf(segments: readonly string[] | null): Route {
  const top = segments?.[0];
  if (top === undefined) return 'other';
  if (top === 'acks' || top === 'nix-cache' || top === 'dashboard' || top === 'metrics') return top;
  return 'tree';
}

export class ControlPlaneMetrics {
  private readonly acks = new Map<string, number>();
  private readonly requests = new Map<string, number>();

  /** An ack answer: accepted (2xx; reason = stored/duplicate/backfilled) or refused (reason = the error code). */
  recordAck(r: AckResponse): void {
    const accepted = r.status < 300;
    const reason = String(
      (accepted ? r.body['status'] : r.body['error']) ?? `http-${r.status}`,
    ).slice(0, 64);
    const key = `${accepted ? 'accepted' : 'refused'}\u0000${reason}`;
    this.acks.set(key, (this.acks.get(key) ?? 0) + 1);
  }

  recordRequest(route: Route, status: number): void {
    const key = `${route}\u0000${status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  render(svc: AckService, now: number): string {
    const view = svc.releaseView;
    const counter = (m: Map<string, number>, a: string, b: string): Sample[] =>
      [...m.entries()]
        .sort(([x], [y]) => (x < y ? -1 : 1))
        .map(([k, value]) => {
          const [va, vb] = k.split('\u0000') as [string, string];
          return { labels: { [a]: va, [b]: vb }, value };
        });
    const g = (name: string, help: string, samples: Sample[]): MetricFamily => ({
      name,
      help,
      type: 'gauge',
      samples,
    });
    const one = (v: number | null): Sample[] => (v === null ? [] : [{ value: v }]);
    const expires = view ? parseIsoTime(view.timestampExpires) : null;
    const stats = svc.logStats;
    return renderMetrics([
      {
        name: 'nixfleet_cp_acks_total',
        help: 'Ack posts answered, by result and reason (refusals by error code).',
        type: 'counter',
        samples: counter(this.acks, 'result', 'reason'),
      },
      {
        name: 'nixfleet_cp_requests_total',
        help: 'Requests answered, by route and HTTP status code.',
        type: 'counter',
        samples: counter(this.requests, 'route', 'code'),
      },
      g(
        'nixfleet_cp_primed',
        '1 when a verified release is installed and served.',
        one(view ? 1 : 0),
      ),
      g(
        'nixfleet_cp_release_version',
        'Release version of the installed tree.',
        one(view?.releaseVersion ?? null),
      ),
      g(
        'nixfleet_cp_revocations_version',
        'Version of the installed revocations.json.',
        one(view?.revocationsVersion ?? null),
      ),
      g(
        'nixfleet_cp_timestamp_expiry_timestamp_seconds',
        "The installed timestamp's expiry (Unix time); past it hosts activate nothing new.",
        one(expires === null ? null : Math.floor(expires / 1000)),
      ),
      g(
        'nixfleet_cp_timestamp_expires_in_seconds',
        'Seconds until the installed timestamp expires (negative: expired).',
        one(expires === null ? null : Math.floor((expires - now) / 1000)),
      ),
      g(
        'nixfleet_cp_hosts',
        'Hosts by phase per channel, from the latest accepted ack of each.',
        view ? hostsByPhase(view, svc, now) : [],
      ),
      {
        name: 'nixfleet_cp_ack_log_appends_total',
        help: 'Acks appended to the ack log since start.',
        type: 'counter',
        samples: one(stats.appended),
      },
      {
        name: 'nixfleet_cp_ack_log_syncs_total',
        help: 'fdatasync calls of the ack log since start (group commit batches).',
        type: 'counter',
        samples: one(stats.syncs),
      },
    ]);
  }
}

/** Every host of every channel counted once, every phase listed (zeros included) so dashboards can sum. */
function hostsByPhase(view: ReleaseView, svc: AckService, now: number): Sample[] {
  const latest = new Map<string, Ack>();
  for (const [host, canonical] of svc.headEnvelopes())
    latest.set(host, (JSON.parse(canonical) as { signed: Ack }).signed);
  const samples: Sample[] = [];
  for (const channel of Object.keys(view.plans).sort()) {
    const plan = view.plans[channel]!;
    const counts = new Map<HostPhase, number>(HOST_PHASES.map((p) => [p, 0]));
    for (const [host, entry] of Object.entries(plan.hosts)) {
      const soak = plan.waves[entry.wave]?.soakSeconds ?? 0;
      const ph = derivePhase(
        phaseParams(plan, entry.target, soak, DEFAULT_TOLERANCES),
        latest.get(host),
        now,
        view.revokedHosts.has(host),
      );
      counts.set(ph.phase, (counts.get(ph.phase) ?? 0) + 1);
    }
    for (const [phase, value] of counts) samples.push({ labels: { channel, phase }, value });
  }
  return samples;
}
