// Per-key token bucket: `burst` requests at once, refilled at `perSecond`. Time is passed in so the
// behaviour is testable without waiting.
export interface RateLimitOptions {
  burst: number;
  perSecond: number;
}

export class RateLimiter {
  private buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly opts: RateLimitOptions) {}

  /** Takes one token; returns 0 when allowed, else the seconds to wait before retrying. */
  take(key: string, nowMs: number): number {
    const b = this.buckets.get(key) ?? { tokens: this.opts.burst, at: nowMs };
    b.tokens = Math.min(this.opts.burst, b.tokens + ((nowMs - b.at) / 1000) * this.opts.perSecond);
    b.at = nowMs;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.opts.perSecond));
  }
}
