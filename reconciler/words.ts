// How text for people names waves and cuts lists, the same in every component (reconciler reasons,
// status, trace, validate, the demo): one numbering and one way to say what a cut list left out.

/**
 * A wave for people: "wave 1" is the first wave. JSON and the protocol keep 0-based indexes
 * (ChannelPlan.waves[i].index, HostView.wave, acks/channels/<ch>/wave-<i>.json).
 */
export function waveLabel(index: number): string {
  return `wave ${index + 1}`;
}

/** "a, b, c and 7 more": a list cut at `max` says how much was left out. */
export function listWithMore(items: readonly string[], max: number): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}
