// Time helpers. Ack times are second-precision RFC 3339 UTC strings (protocol/schemas/common.ts);
// parsing them by hand is ~10x faster than Date.parse, which matters at 100k hosts per view.

/** ms since the epoch for "YYYY-MM-DDTHH:MM:SSZ" (already validated by the ack schema). */
export function parseAckTime(iso: string): number {
  const y0 =
    (iso.charCodeAt(0) - 48) * 1000 +
    (iso.charCodeAt(1) - 48) * 100 +
    (iso.charCodeAt(2) - 48) * 10 +
    (iso.charCodeAt(3) - 48);
  const m = (iso.charCodeAt(5) - 48) * 10 + (iso.charCodeAt(6) - 48);
  const d = (iso.charCodeAt(8) - 48) * 10 + (iso.charCodeAt(9) - 48);
  const hh = (iso.charCodeAt(11) - 48) * 10 + (iso.charCodeAt(12) - 48);
  const mm = (iso.charCodeAt(14) - 48) * 10 + (iso.charCodeAt(15) - 48);
  const ss = (iso.charCodeAt(17) - 48) * 10 + (iso.charCodeAt(18) - 48);
  // Days from the civil date (proleptic Gregorian), H. Hinnant's algorithm.
  const y = m <= 2 ? y0 - 1 : y0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  const days = era * 146097 + doe - 719468;
  return ((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000;
}

/** "4 of 10 soak minutes" style progress; seconds when the soak is not a whole number of minutes. */
export function soakProgress(healthySeconds: number, soakSeconds: number): string {
  const done = Math.max(0, Math.min(healthySeconds, soakSeconds));
  if (soakSeconds % 60 === 0 && soakSeconds >= 120)
    return `${Math.floor(done / 60)} of ${soakSeconds / 60} soak minutes`;
  return `${Math.floor(done)} of ${soakSeconds} soak seconds`;
}

/**
 * The one human duration, for the reconciler's reasons and every view (operator CLI, site): "45 s",
 * "12 min", "3 h 5 min", "4 d 2 h". Seconds up to two minutes and minutes up to two hours stay exact
 * enough to act on; beyond three days the hours are what matter.
 */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 72) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
