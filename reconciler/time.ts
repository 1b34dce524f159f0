// Time helpers. Ack times are second-precision RFC 3339 UTC strings (protocol/schemas/common.ts);
// parsing them by hand is ~10x faster than Date.parse, which matters at 100k hosts per view.

/** ms since the epoch for "YYYY-MM-DDTHH:MM:SSZ" (already validated by the ack schema). */
export function parseAckTime(iso: string): number {
  const d = (i: number) => iso.charCodeAt(i) - 48;
  return Date.UTC(
    d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3),
    d(5) * 10 + d(6) - 1,
    d(8) * 10 + d(9),
    d(11) * 10 + d(12),
    d(14) * 10 + d(15),
    d(17) * 10 + d(18),
  );
}

/** "4 of 10 soak minutes" style progress; seconds when the soak is not a whole number of minutes. */
export function soakProgress(healthySeconds: number, soakSeconds: number): string {
  const done = Math.max(0, Math.min(healthySeconds, soakSeconds));
  if (soakSeconds % 60 === 0 && soakSeconds >= 120) return `${Math.floor(done / 60)} of ${soakSeconds / 60} soak minutes`;
  return `${Math.floor(done)} of ${soakSeconds} soak seconds`;
}

/** Human duration for reasons: "45 s", "12 min", "3 h 5 min". */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
