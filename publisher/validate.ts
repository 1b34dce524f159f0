// Fleet validation: every violation in one report, each naming its culprit by path
// (`hosts.web-01.channel: unknown channel "stabel"`). Two passes: the schema (shapes and single values,
// all issues collected by zod), then the cross-checks below, which need a well-typed fleet. Warnings
// (empty waves, unused policies, ...) never block a publish.
import type { z } from 'zod';
import { Fleet } from './fleet-schema.ts';
import { parseHostKey } from './host-key.ts';
import { findCycles, describeCycle } from './graph.ts';
import { membershipOf, policyWaves, resolveFleet, type ResolvedFleet } from './waves.ts';
import type { Selector } from '../protocol/schemas/selector.ts';
import { parseStrictJson } from '../protocol/strict-json.ts';
import { LIMITS } from '../protocol/limits.ts';

export interface ValidFleet {
  ok: true;
  fleet: Fleet;
  resolved: ResolvedFleet;
  warnings: string[];
}
export interface InvalidFleet {
  ok: false;
  errors: string[];
  warnings: string[];
}
export type ValidationResult = ValidFleet | InvalidFleet;

export class FleetInvalid extends Error {
  constructor(readonly source: string, readonly errors: string[], readonly warnings: string[]) {
    super(`${source}: the fleet is invalid (${errors.length} violation${errors.length === 1 ? '' : 's'}):\n${errors.map((e) => `  - ${e}`).join('\n')}`);
    this.name = 'FleetInvalid';
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out || '(fleet)';
}

function schemaErrors(error: z.ZodError): string[] {
  // zod's own messages: the Nix mkFleet reproduces them word for word (tests/nix/differential.test.ts).
  return error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
}

/** Host names, channel names and tags a selector mentions, to check them against the fleet. */
function selectorRefs(sel: Selector, out: { hosts: string[]; channels: string[]; tags: string[] }): void {
  if ('tags' in sel) out.tags.push(...sel.tags);
  else if ('tagsAny' in sel) out.tags.push(...sel.tagsAny);
  else if ('hosts' in sel) out.hosts.push(...sel.hosts);
  else if ('channel' in sel) out.channels.push(sel.channel);
  else if ('and' in sel) sel.and.forEach((s) => selectorRefs(s, out));
  else if ('not' in sel) selectorRefs(sel.not, out);
}

class Report {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  error(path: string, msg: string): void {
    this.errors.push(`${path}: ${msg}`);
  }
  warn(path: string, msg: string): void {
    this.warnings.push(`${path}: ${msg}`);
  }
}

function checkSelector(fleet: Fleet, sel: Selector, path: string, r: Report, knownTags: ReadonlySet<string>): void {
  const refs = { hosts: [] as string[], channels: [] as string[], tags: [] as string[] };
  selectorRefs(sel, refs);
  for (const h of new Set(refs.hosts)) if (!fleet.hosts[h]) r.error(path, `unknown host "${h}"`);
  for (const c of new Set(refs.channels)) if (!fleet.channels[c]) r.error(path, `unknown channel "${c}"`);
  for (const t of new Set(refs.tags)) if (!knownTags.has(t)) r.warn(path, `no host has the tag "${t}"`);
}

function checkHosts(fleet: Fleet, r: Report): void {
  if (Object.keys(fleet.hosts).length === 0) r.error('hosts', 'the fleet has no hosts');
  const byKey = new Map<string, string>();
  const byMachineId = new Map<string, string>();
  const revokedClosures = new Set(fleet.revoked.closures.map((c) => c.storePath));
  for (const [name, h] of Object.entries(fleet.hosts)) {
    if (!fleet.channels[h.channel]) r.error(`hosts.${name}.channel`, `unknown channel "${h.channel}"`);
    const key = parseHostKey(h.hostKey);
    if (key.ok) {
      const hex = Buffer.from(key.raw).toString('hex');
      const other = byKey.get(hex);
      if (other !== undefined) r.error(`hosts.${name}.hostKey`, `the same host key is used by hosts.${other}`);
      else byKey.set(hex, name);
    }
    if (h.machineId !== undefined) {
      const other = byMachineId.get(h.machineId);
      if (other !== undefined) r.error(`hosts.${name}.machineId`, `the same machine id is used by hosts.${other}`);
      else byMachineId.set(h.machineId, name);
    }
    if (revokedClosures.has(h.target)) r.error(`hosts.${name}.target`, `${h.target} is a revoked closure (revoked.closures)`);
  }
  fleet.revoked.hosts.forEach((rh, i) => {
    // Kept in the fleet, a revoked host can never ack: its wave then needs an offline excuse.
    if (fleet.hosts[rh.host] && rh.keyid === undefined) r.warn(`revoked.hosts[${i}]`, `host "${rh.host}" is revoked but still in the fleet (its wave will wait for it or need an offline excuse)`);
  });
}

function checkChannelsAndPolicies(fleet: Fleet, r: Report): void {
  const used = new Set<string>();
  for (const [name, c] of Object.entries(fleet.channels)) {
    if (!fleet.policies[c.policy]) r.error(`channels.${name}.policy`, `unknown policy "${c.policy}"`);
    used.add(c.policy);
    if (c.freshnessSeconds < 2 * c.signingIntervalSeconds) {
      r.error(`channels.${name}.freshnessSeconds`, `${c.freshnessSeconds} is less than 2 x signingIntervalSeconds (${c.signingIntervalSeconds}): one late re-sign would make every host stale`);
    }
    // Without windows the maintenance gate is always open, so this policy would silently mean `allowed`.
    if (c.reboot === 'in-maintenance-window' && c.maintenanceWindows.length === 0) {
      r.error(`channels.${name}.reboot`, 'in-maintenance-window needs at least one entry in maintenanceWindows (write "allowed" to reboot at any time)');
    }
  }
  for (const [name, p] of Object.entries(fleet.policies)) {
    if (!used.has(name)) r.warn(`policies.${name}`, 'is used by no channel');
    const waves = p.waves;
    if (p.strategy === 'all-at-once') {
      if (waves.length > 1) r.error(`policies.${name}.waves`, `strategy all-at-once has exactly one wave, got ${waves.length}`);
      if (waves[0] && membershipOf(waves[0]) !== 'remainder') r.error(`policies.${name}.waves[0]`, 'strategy all-at-once takes every host: remove selector/count/percent');
    } else if (waves.length === 0) {
      r.error(`policies.${name}.waves`, `strategy ${p.strategy} needs at least one wave`);
    }
    if (p.strategy === 'canary') {
      if (waves.length < 2) r.error(`policies.${name}.waves`, 'strategy canary needs a first small wave and at least one more');
      else if (waves[0] && membershipOf(waves[0]) === 'remainder') r.error(`policies.${name}.waves[0]`, 'the canary wave needs a selector, count or percent');
    }
    waves.forEach((w, i) => {
      const given = [w.selector !== undefined && 'selector', w.count !== undefined && 'count', w.percent !== undefined && 'percent'].filter(Boolean);
      if (given.length > 1) r.error(`policies.${name}.waves[${i}]`, `give at most one of selector, count, percent (got ${given.join(', ')})`);
      if (membershipOf(w) === 'remainder' && i !== waves.length - 1) r.error(`policies.${name}.waves[${i}]`, 'a wave without selector, count or percent takes the remainder and must be the last wave');
    });
  }
}

function checkSelectors(fleet: Fleet, r: Report, knownTags: ReadonlySet<string>): void {
  for (const [name, p] of Object.entries(fleet.policies)) {
    p.waves.forEach((w, i) => {
      if (w.selector) checkSelector(fleet, w.selector, `policies.${name}.waves[${i}].selector`, r, knownTags);
    });
  }
  fleet.disruptionBudgets.forEach((b, i) => checkSelector(fleet, b.selector, `disruptionBudgets[${i}].selector`, r, knownTags));
}

function checkEdges(fleet: Fleet, r: Report): void {
  fleet.hostEdges.forEach((e, i) => {
    const a = fleet.hosts[e.before];
    const b = fleet.hosts[e.after];
    if (!a) r.error(`hostEdges[${i}].before`, `unknown host "${e.before}"`);
    if (!b) r.error(`hostEdges[${i}].after`, `unknown host "${e.after}"`);
    if (a && b && a.channel !== b.channel) {
      r.error(`hostEdges[${i}]`, `host edges stay within a channel: ${e.before} is in channel ${a.channel}, ${e.after} in ${b.channel} (use a channel edge)`);
    }
  });
  for (const cycle of findCycles(fleet.hostEdges)) r.error('hostEdges', `cycle ${describeCycle(cycle)}`);
  fleet.channelEdges.forEach((e, i) => {
    if (!fleet.channels[e.before]) r.error(`channelEdges[${i}].before`, `unknown channel "${e.before}"`);
    if (!fleet.channels[e.after]) r.error(`channelEdges[${i}].after`, `unknown channel "${e.after}"`);
  });
  for (const cycle of findCycles(fleet.channelEdges)) r.error('channelEdges', `cycle ${describeCycle(cycle)}`);
}

function checkBudgets(fleet: Fleet, r: Report): void {
  const ids = new Set<string>();
  fleet.disruptionBudgets.forEach((b, i) => {
    const path = `disruptionBudgets[${i}]`;
    if (ids.has(b.id)) r.error(`${path}.id`, `duplicate budget id "${b.id}"`);
    ids.add(b.id);
    if ((b.maxInFlight === undefined) === (b.maxInFlightPct === undefined)) r.error(path, 'give exactly one of maxInFlight, maxInFlightPct');
    if (b.maxInFlight === 0) r.error(`${path}.maxInFlight`, 'can never be satisfied: 0 lets no host start');
    if (b.maxInFlightPct === 0) r.error(`${path}.maxInFlightPct`, 'can never be satisfied: 0% lets no host start (use 1-100)');
  });
}

/** Checks that need the resolved waves: coverage, empty waves, edges that could only deadlock. */
function checkResolution(fleet: Fleet, resolved: ResolvedFleet, r: Report): void {
  const waveOf = new Map<string, number>();
  for (const ch of Object.values(resolved.channels)) {
    const path = `channels.${ch.name}`;
    const size = ch.waves.reduce((n, w) => n + w.hosts.length, 0) + ch.unassigned.length;
    if (size === 0) {
      r.warn(path, 'has no hosts');
      continue;
    }
    if (ch.unassigned.length > 0) {
      const shown = ch.unassigned.slice().sort();
      const list = shown.slice(0, 10).join(', ') + (shown.length > 10 ? `, ... (${shown.length} in all)` : '');
      r.error(path, `hosts matched by no wave of policy "${ch.policy}": ${list} (rule: add a last wave without selector/count/percent to take the remainder)`);
    }
    for (const w of ch.waves) {
      if (w.hosts.length === 0) r.warn(`${path}`, `wave ${w.index} of policy "${ch.policy}" (${w.membership}) has no hosts`);
      for (const h of w.hosts) waveOf.set(h, w.index);
    }
    if (ch.strategy === 'canary' && ch.waves.length > 1 && (ch.waves[0]?.hosts.length ?? 0) * 2 > size) {
      r.warn(path, `the canary wave holds ${ch.waves[0]!.hosts.length} of ${size} hosts`);
    }
  }
  fleet.hostEdges.forEach((e, i) => {
    const wb = waveOf.get(e.before);
    const wa = waveOf.get(e.after);
    if (wb !== undefined && wa !== undefined && wb > wa) {
      r.error(`hostEdges[${i}]`, `can never be satisfied: ${e.after} (wave ${wa}) waits for ${e.before}, which is in the later wave ${wb}`);
    }
  });
  resolved.budgets.forEach((b, i) => {
    if (b.hosts.length === 0) r.warn(`disruptionBudgets[${i}]`, `budget "${b.id}" matches no host`);
  });
}

/** Validates a parsed JSON value as a fleet; on success also returns the resolved waves and budgets. */
export function validateFleet(input: unknown): ValidationResult {
  const parsed = Fleet.safeParse(input);
  if (!parsed.success) return { ok: false, errors: schemaErrors(parsed.error), warnings: [] };
  const fleet = parsed.data;
  const r = new Report();
  const knownTags = new Set(Object.values(fleet.hosts).flatMap((h) => h.tags));
  checkHosts(fleet, r);
  checkChannelsAndPolicies(fleet, r);
  checkSelectors(fleet, r, knownTags);
  checkEdges(fleet, r);
  checkBudgets(fleet, r);
  // Channels whose policy is missing or has no waves cannot be resolved (already reported); the others
  // still are, so that their coverage problems show up in the same report.
  const resolvableChannels = Object.fromEntries(
    Object.entries(fleet.channels).filter(([, c]) => {
      const p = fleet.policies[c.policy];
      return p !== undefined && policyWaves(p).length > 0;
    }),
  );
  const resolved = resolveFleet({ ...fleet, channels: resolvableChannels });
  checkResolution(fleet, resolved, r);
  if (r.errors.length > 0) return { ok: false, errors: r.errors, warnings: r.warnings };
  return { ok: true, fleet, resolved, warnings: r.warnings };
}

/** Validates or throws FleetInvalid listing every violation. `source` names the input in the message. */
export function assertValidFleet(input: unknown, source = 'fleet'): ValidFleet {
  const r = validateFleet(input);
  if (!r.ok) throw new FleetInvalid(source, r.errors, r.warnings);
  return r;
}

/** Strict intake of fleet JSON bytes (duplicate keys, non-integers, size cap) followed by validation. */
export function validateFleetBytes(bytes: Uint8Array | string, source: string): ValidationResult {
  return validateFleet(parseStrictJson(bytes, { file: source, maxBytes: LIMITS.fleet }));
}
