// Freshness per channel (issue 9 section 4). The timestamp's own expiry is the LARGEST freshnessSeconds
// of any channel (the outer bound every reader enforces, verifyTimestamp); each agent then holds the
// timestamp to its OWN channel's bound, signed in its channel plan: fresh while
// now - timestamp.issuedAt < plan.freshnessSeconds. A control plane freezing the tree can therefore keep
// a host on an old timestamp for at most its own channel's window before the host starts nothing new.
import { isoTime, parseIsoTime, type Timestamp } from '../schemas/index.ts';

export type ChannelFreshness = { status: 'fresh' } | { status: 'stale'; reason: string };

export function channelFreshness(
  ts: Pick<Timestamp, 'issuedAt' | 'expires'>,
  plan: { channel: string; freshnessSeconds: number },
  now: number,
): ChannelFreshness {
  const until = Math.min(
    parseIsoTime(ts.issuedAt) + plan.freshnessSeconds * 1000,
    parseIsoTime(ts.expires),
  );
  if (now < until) return { status: 'fresh' };
  return {
    status: 'stale',
    reason:
      `timestamp.json issued at ${ts.issuedAt} is older than ` +
      `channel ${plan.channel}'s freshness of ${plan.freshnessSeconds} s (stale ` +
      `since ${isoTime(until)}, now ${isoTime(now)})`,
  };
}
