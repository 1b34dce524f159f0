// Fleet validation: every violation in one report, each naming its culprit by path
// (`hosts.web-01.channel: unknown channel "stabel" (did you mean "stable"?)`). Two passes over the same
// input, both always run: the schema (shapes and single values, all issues collected by zod, worded by
// protocol/schemas/issues.ts), and the cross-checks below, which relate parts of the fleet. The
// cross-checks see only the parts that are well-typed on their own (`WellTyped`), so a fleet with a
// missing target still has its channel reference, host keys and edges checked, and nothing is reported
// twice: a part that failed the schema is skipped, and a name whose definition failed the schema still
// exists (no "unknown channel" for a channel whose body is broken). The checks that need the whole
// fleet (wave resolution: coverage, deadlocked edges) and the warnings run only once the schema passed.
// nix/lib/validate.nix mirrors this, part for part.
import type { z } from 'zod';
import {
  Fleet,
  FleetHost,
  FleetChannel,
  FleetPolicy,
  FleetWave,
  FleetBudget,
  HostEdge,
  ChannelEdge,
  FleetRevokedClosure,
  ComplianceFramework,
} from './fleet-schema.ts';
import { checkComplianceReferences, checkStaticControls } from './compliance.ts';
import { parseHostKey } from './host-key.ts';
import { findCycles, describeCycle } from './graph.ts';
import { membershipOf, policyWaves, resolveFleet, type ResolvedFleet } from './waves.ts';
import {
  Name,
  ComplianceId,
  type Selector,
  plainIssues,
  didYouMean,
  parseStrictJson,
  LIMITS,
} from '../protocol/index.ts';

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
  constructor(
    readonly source: string,
    readonly errors: string[],
    readonly warnings: string[],
  ) {
    super(
      `${source}: the fleet is invalid (${errors.length} violation${errors.length === 1 ? '' : 's'}):\n${errors.map((e) => `  - ${e}`).join('\n')}`,
    );
    this.name = 'FleetInvalid';
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path)
    out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out || '(fleet)';
}

function schemaErrors(error: z.ZodError): string[] {
  // Worded by protocol/schemas/issues.ts; the Nix mkFleet prints the same words (tests/nix/differential.test.ts).
  return error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
}

// ---- The well-typed parts of a fleet ------------------------------------------------------------------
// What each cross-check needs, and so when it runs:
//   declared names (hosts, channels, policies): the keys that are valid names, whatever their bodies;
//     references are checked against them only when the record itself is an object;
//   a host's channel / target / hostKey / machineId: that one field well-typed;
//   a channel's policy: that field; freshness vs signing interval: both fields (defaults count);
//   a policy's strategy and wave shape: the whole policy; a wave's selector references: that selector;
//   an edge endpoint: that endpoint (a cycle needs both endpoints of each edge it runs through); an edge
//     across channels: both hosts declared, their channel fields well-typed and both channels declared;
//   a budget's id, selector and limits (maxInFlight and maxInFlightPct both well-typed) separately;
//   revoked targets: the closures' well-typed store paths.

type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => v !== null && typeof v === 'object' && !Array.isArray(v);

/** One field's value when it passes its own schema (defaults applied), else undefined. */
function checkedField<T>(
  schema: z.ZodType<T>,
  raw: unknown,
  key: string,
): { value: T } | undefined {
  if (!isObject(raw)) return undefined;
  const r = schema.safeParse(raw[key]);
  return r.success ? { value: r.data } : undefined;
}

/** The elements of a list field; an absent list is empty (its default), and so is one that is not a list (nothing to check). */
function elements(raw: unknown, key: string): unknown[] {
  const v = isObject(raw) ? raw[key] : undefined;
  return Array.isArray(v) ? v : [];
}

/**
 * A record field's entries under their valid names, or undefined when the field is not an object.
 * `names` null: the schema already checked every name (a fleet that passed it: 10,000 host names
 * are not parsed a second time).
 */
function declared<T>(
  raw: unknown,
  key: string,
  parts: (entry: unknown) => T,
  names: z.ZodType<string> | null,
): Map<string, T> | undefined {
  const rec = isObject(raw) ? raw[key] : undefined;
  if (!isObject(rec)) return undefined;
  const valid =
    names === null ? Object.keys(rec) : Object.keys(rec).filter((n) => names.safeParse(n).success);
  return new Map(valid.map((n) => [n, parts(rec[n])]));
}

interface HostParts {
  channel?: string;
  target?: string;
  hostKey?: string;
  machineId?: string;
  tags?: string[];
}
interface ChannelParts {
  policy?: string;
  freshnessSeconds?: number;
  signingIntervalSeconds?: number;
  reboot?: FleetChannel['reboot'];
  maintenanceWindows?: FleetChannel['maintenanceWindows'];
  compliance?: FleetChannel['compliance'];
}
interface PolicyParts {
  policy?: FleetPolicy;
  selectors: { index: number; selector: Selector }[];
}
interface EdgeParts {
  index: number;
  before?: string;
  after?: string;
}
interface BudgetParts {
  index: number;
  id?: string;
  selector?: Selector;
  limits?: { maxInFlight?: number; maxInFlightPct?: number };
}

/** The parts of a fleet the cross-checks can use (undefined record: not an object, so nothing refers into it). */
interface WellTyped {
  hosts?: Map<string, HostParts>;
  /** `hosts` is an object without a single key. */
  noHosts: boolean;
  channels?: Map<string, ChannelParts>;
  policies?: Map<string, PolicyParts>;
  hostEdges: EdgeParts[];
  channelEdges: EdgeParts[];
  budgets: BudgetParts[];
  revokedClosures: Set<string>;
  /** Declared compliance frameworks (absent field: none), with their control kinds when well-typed. */
  frameworks?: Map<string, { kinds?: ('static' | 'runtime')[] }>;
}

/** A field of a fleet that already passed the schema: well-typed by construction (no second parse of host keys). */
function parsedField<T>(
  _schema: z.ZodType<T>,
  raw: unknown,
  key: string,
): { value: T } | undefined {
  return isObject(raw) ? { value: raw[key] as T } : undefined;
}

/** `schemaPassed`: `input` is the schema's output, so each part is taken as it is. */
function wellTyped(input: unknown, schemaPassed: boolean): WellTyped {
  const typed = schemaPassed ? parsedField : checkedField;
  const v = <T>(r: { value: T } | undefined): T | undefined => r?.value;
  const edges = (key: string, schema: typeof HostEdge | typeof ChannelEdge): EdgeParts[] =>
    elements(input, key).map((e, index) => ({
      index,
      before: v(typed(schema.shape.before, e, 'before')),
      after: v(typed(schema.shape.after, e, 'after')),
    }));
  const hostsRaw = isObject(input) ? input.hosts : undefined;
  const revoked = isObject(input) && input.revoked !== undefined ? input.revoked : {};
  // Entries of a record field; names checked only when the schema did not pass (it checked them).
  const records = <T>(key: string, parts: (entry: unknown) => T, names: z.ZodType<string> = Name) =>
    declared(input, key, parts, schemaPassed ? null : names);
  return {
    hosts: records('hosts', (h) => ({
      channel: v(typed(FleetHost.shape.channel, h, 'channel')),
      target: v(typed(FleetHost.shape.target, h, 'target')),
      hostKey: v(typed(FleetHost.shape.hostKey, h, 'hostKey')),
      machineId: v(typed(FleetHost.shape.machineId, h, 'machineId')),
      tags: v(typed(FleetHost.shape.tags, h, 'tags')),
    })),
    noHosts: isObject(hostsRaw) && Object.keys(hostsRaw).length === 0,
    channels: records('channels', (c) => ({
      policy: v(typed(FleetChannel.shape.policy, c, 'policy')),
      freshnessSeconds: v(typed(FleetChannel.shape.freshnessSeconds, c, 'freshnessSeconds')),
      signingIntervalSeconds: v(
        typed(FleetChannel.shape.signingIntervalSeconds, c, 'signingIntervalSeconds'),
      ),
      reboot: v(typed(FleetChannel.shape.reboot, c, 'reboot')),
      maintenanceWindows: v(typed(FleetChannel.shape.maintenanceWindows, c, 'maintenanceWindows')),
      compliance: v(typed(FleetChannel.shape.compliance, c, 'compliance')),
    })),
    policies: records('policies', (p) => {
      const whole = schemaPassed
        ? { success: true as const, data: p as FleetPolicy }
        : FleetPolicy.safeParse(p);
      const selectors = elements(p, 'waves').flatMap((w, index) => {
        const selector = v(typed(FleetWave.shape.selector, w, 'selector'));
        return selector === undefined ? [] : [{ index, selector }];
      });
      return { policy: whole.success ? whole.data : undefined, selectors };
    }),
    hostEdges: edges('hostEdges', HostEdge),
    channelEdges: edges('channelEdges', ChannelEdge),
    budgets: elements(input, 'disruptionBudgets').map((b, index) => {
      const max = typed(FleetBudget.shape.maxInFlight, b, 'maxInFlight');
      const pct = typed(FleetBudget.shape.maxInFlightPct, b, 'maxInFlightPct');
      return {
        index,
        id: v(typed(FleetBudget.shape.id, b, 'id')),
        selector: v(typed(FleetBudget.shape.selector, b, 'selector')),
        limits: max && pct ? { maxInFlight: max.value, maxInFlightPct: pct.value } : undefined,
      };
    }),
    frameworks:
      isObject(input) && input.complianceFrameworks === undefined
        ? new Map()
        : records(
            'complianceFrameworks',
            (f) => {
              const whole = schemaPassed
                ? { success: true as const, data: f as ComplianceFramework }
                : ComplianceFramework.safeParse(f);
              return {
                kinds: whole.success
                  ? Object.values(whole.data.controls).map((c) => c.kind)
                  : undefined,
              };
            },
            ComplianceId,
          ),
    revokedClosures: new Set(
      elements(revoked, 'closures').flatMap((c) => {
        const path = v(typed(FleetRevokedClosure.shape.storePath, c, 'storePath'));
        return path === undefined ? [] : [path];
      }),
    ),
  };
}

// ---- Cross-checks ---------------------------------------------------------------------------------------

/** `unknown channel "stabel" (did you mean "stable"?)` */
function unknown(what: string, name: string, known: Map<string, unknown>): string {
  return `unknown ${what} "${name}"${didYouMean(name, known.keys())}`;
}

/** Host names, channel names and tags a selector mentions, to check them against the fleet. */
function selectorRefs(
  sel: Selector,
  out: { hosts: string[]; channels: string[]; tags: string[] },
): void {
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

function checkSelector(
  parts: WellTyped,
  sel: Selector,
  path: string,
  r: Report,
  knownTags: ReadonlySet<string>,
): void {
  const refs = { hosts: [] as string[], channels: [] as string[], tags: [] as string[] };
  selectorRefs(sel, refs);
  const { hosts, channels } = parts;
  if (hosts)
    for (const h of new Set(refs.hosts))
      if (!hosts.has(h)) r.error(path, unknown('host', h, hosts));
  if (channels)
    for (const c of new Set(refs.channels))
      if (!channels.has(c)) r.error(path, unknown('channel', c, channels));
  for (const t of new Set(refs.tags))
    if (!knownTags.has(t)) r.warn(path, `no host has the tag "${t}"`);
}

function checkHosts(parts: WellTyped, r: Report): void {
  if (parts.noHosts) r.error('hosts', 'the fleet has no hosts');
  const byKey = new Map<string, string>();
  const byMachineId = new Map<string, string>();
  const { channels } = parts;
  for (const [name, h] of parts.hosts ?? []) {
    if (h.channel !== undefined && channels && !channels.has(h.channel))
      r.error(`hosts.${name}.channel`, unknown('channel', h.channel, channels));
    const key = h.hostKey === undefined ? undefined : parseHostKey(h.hostKey);
    if (key?.ok) {
      // The base64 of the raw key: one text per key, however the fleet wrote it (raw or OpenSSH line).
      const other = byKey.get(key.base64);
      if (other !== undefined)
        r.error(`hosts.${name}.hostKey`, `the same host key is used by hosts.${other}`);
      else byKey.set(key.base64, name);
    }
    if (h.machineId !== undefined) {
      const other = byMachineId.get(h.machineId);
      if (other !== undefined)
        r.error(`hosts.${name}.machineId`, `the same machine id is used by hosts.${other}`);
      else byMachineId.set(h.machineId, name);
    }
    if (h.target !== undefined && parts.revokedClosures.has(h.target))
      r.error(`hosts.${name}.target`, `${h.target} is a revoked closure (revoked.closures)`);
  }
}

function checkChannelsAndPolicies(parts: WellTyped, r: Report): void {
  const used = new Set<string>();
  const { policies } = parts;
  for (const [name, c] of parts.channels ?? []) {
    if (c.policy !== undefined) {
      if (policies && !policies.has(c.policy))
        r.error(`channels.${name}.policy`, unknown('policy', c.policy, policies));
      used.add(c.policy);
    }
    if (
      c.freshnessSeconds !== undefined &&
      c.signingIntervalSeconds !== undefined &&
      c.freshnessSeconds < 2 * c.signingIntervalSeconds
    ) {
      r.error(
        `channels.${name}.freshnessSeconds`,
        `${c.freshnessSeconds} is less than 2 x signingIntervalSeconds (${c.signingIntervalSeconds}): one late re-sign would make every host stale`,
      );
    }
    // Without windows the maintenance gate is always open, so this policy would silently mean `allowed`.
    if (c.reboot === 'in-maintenance-window' && c.maintenanceWindows?.length === 0) {
      r.error(
        `channels.${name}.reboot`,
        'in-maintenance-window needs at least one entry in maintenanceWindows (write "allowed" to reboot at any time)',
      );
    }
  }
  for (const [name, { policy: p }] of policies ?? []) {
    if (!used.has(name)) r.warn(`policies.${name}`, 'is used by no channel');
    if (!p) continue;
    const waves = p.waves;
    if (p.strategy === 'all-at-once') {
      if (waves.length > 1)
        r.error(
          `policies.${name}.waves`,
          `strategy all-at-once has exactly one wave, got ${waves.length}`,
        );
      if (waves[0] && membershipOf(waves[0]) !== 'remainder')
        r.error(
          `policies.${name}.waves[0]`,
          'strategy all-at-once takes every host: remove selector/count/percent',
        );
    } else if (waves.length === 0) {
      r.error(`policies.${name}.waves`, `strategy ${p.strategy} needs at least one wave`);
    }
    if (p.strategy === 'canary') {
      if (waves.length < 2)
        r.error(
          `policies.${name}.waves`,
          'strategy canary needs a first small wave and at least one more',
        );
      else if (waves[0] && membershipOf(waves[0]) === 'remainder')
        r.error(`policies.${name}.waves[0]`, 'the canary wave needs a selector, count or percent');
    }
    waves.forEach((w, i) => {
      const given = [
        w.selector !== undefined && 'selector',
        w.count !== undefined && 'count',
        w.percent !== undefined && 'percent',
      ].filter(Boolean);
      if (given.length > 1)
        r.error(
          `policies.${name}.waves[${i}]`,
          `give at most one of selector, count, percent (got ${given.join(', ')})`,
        );
      if (membershipOf(w) === 'remainder' && i !== waves.length - 1)
        r.error(
          `policies.${name}.waves[${i}]`,
          'a wave without selector, count or percent takes the remainder and must be the last wave',
        );
    });
  }
}

function checkSelectors(parts: WellTyped, r: Report, knownTags: ReadonlySet<string>): void {
  for (const [name, p] of parts.policies ?? []) {
    for (const { index, selector } of p.selectors)
      checkSelector(parts, selector, `policies.${name}.waves[${index}].selector`, r, knownTags);
  }
  for (const b of parts.budgets)
    if (b.selector)
      checkSelector(parts, b.selector, `disruptionBudgets[${b.index}].selector`, r, knownTags);
}

/** The edges whose both endpoints are well-typed: a cycle among them is one whatever else is broken. */
function wholeEdges(edges: readonly EdgeParts[]): { before: string; after: string }[] {
  return edges.flatMap((e) =>
    e.before !== undefined && e.after !== undefined ? [{ before: e.before, after: e.after }] : [],
  );
}

function checkEdges(parts: WellTyped, r: Report): void {
  const { hosts, channels } = parts;
  for (const e of parts.hostEdges) {
    const path = `hostEdges[${e.index}]`;
    const a = e.before === undefined ? undefined : hosts?.get(e.before);
    const b = e.after === undefined ? undefined : hosts?.get(e.after);
    if (hosts && e.before !== undefined && !a)
      r.error(`${path}.before`, unknown('host', e.before, hosts));
    if (hosts && e.after !== undefined && !b)
      r.error(`${path}.after`, unknown('host', e.after, hosts));
    // Only between declared channels: a host in an unknown channel is already reported as such.
    if (
      a?.channel !== undefined &&
      b?.channel !== undefined &&
      a.channel !== b.channel &&
      channels?.has(a.channel) &&
      channels.has(b.channel)
    ) {
      r.error(
        path,
        `host edges stay within a channel: ${e.before} is in channel ${a.channel}, ${e.after} in ${b.channel} (use a channel edge)`,
      );
    }
  }
  for (const cycle of findCycles(wholeEdges(parts.hostEdges)))
    r.error('hostEdges', `cycle ${describeCycle(cycle)}`);
  for (const e of parts.channelEdges) {
    if (channels && e.before !== undefined && !channels.has(e.before))
      r.error(`channelEdges[${e.index}].before`, unknown('channel', e.before, channels));
    if (channels && e.after !== undefined && !channels.has(e.after))
      r.error(`channelEdges[${e.index}].after`, unknown('channel', e.after, channels));
  }
  for (const cycle of findCycles(wholeEdges(parts.channelEdges)))
    r.error('channelEdges', `cycle ${describeCycle(cycle)}`);
}

function checkBudgets(parts: WellTyped, r: Report): void {
  const ids = new Set<string>();
  for (const b of parts.budgets) {
    const path = `disruptionBudgets[${b.index}]`;
    if (b.id !== undefined) {
      if (ids.has(b.id)) r.error(`${path}.id`, `duplicate budget id "${b.id}"`);
      ids.add(b.id);
    }
    if (!b.limits) continue;
    const { maxInFlight, maxInFlightPct } = b.limits;
    if ((maxInFlight === undefined) === (maxInFlightPct === undefined))
      r.error(path, 'give exactly one of maxInFlight, maxInFlightPct');
    if (maxInFlight === 0)
      r.error(`${path}.maxInFlight`, 'can never be satisfied: 0 lets no host start');
    if (maxInFlightPct === 0)
      r.error(
        `${path}.maxInFlightPct`,
        'can never be satisfied: 0% lets no host start (use 1-100)',
      );
  }
}

function revokedHostWarnings(fleet: Fleet, r: Report): void {
  fleet.revoked.hosts.forEach((rh, i) => {
    // Kept in the fleet, a revoked host can never ack: its wave then needs an offline excuse.
    if (fleet.hosts[rh.host] && rh.keyid === undefined)
      r.warn(
        `revoked.hosts[${i}]`,
        `host "${rh.host}" is revoked but still in the fleet (its wave will wait for it or need an offline excuse)`,
      );
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
      const list =
        shown.slice(0, 10).join(', ') + (shown.length > 10 ? `, ... (${shown.length} in all)` : '');
      r.error(
        path,
        `hosts matched by no wave of policy "${ch.policy}": ${list} (rule: add a last wave without selector/count/percent to take the remainder)`,
      );
    }
    for (const w of ch.waves) {
      if (w.hosts.length === 0)
        r.warn(
          `${path}`,
          `wave ${w.index} of policy "${ch.policy}" (${w.membership}) has no hosts`,
        );
      for (const h of w.hosts) waveOf.set(h, w.index);
    }
    if (
      ch.strategy === 'canary' &&
      ch.waves.length > 1 &&
      (ch.waves[0]?.hosts.length ?? 0) * 2 > size
    ) {
      r.warn(path, `the canary wave holds ${ch.waves[0]!.hosts.length} of ${size} hosts`);
    }
  }
  fleet.hostEdges.forEach((e, i) => {
    const wb = waveOf.get(e.before);
    const wa = waveOf.get(e.after);
    if (wb !== undefined && wa !== undefined && wb > wa) {
      r.error(
        `hostEdges[${i}]`,
        `can never be satisfied: ${e.after} (wave ${wa}) waits for ${e.before}, which is in the later wave ${wb}`,
      );
    }
  });
  resolved.budgets.forEach((b, i) => {
    if (b.hosts.length === 0) r.warn(`disruptionBudgets[${i}]`, `budget "${b.id}" matches no host`);
  });
}

/** Validates a parsed JSON value as a fleet; on success also returns the resolved waves and budgets. */
export function validateFleet(input: unknown): ValidationResult {
  const parsed = Fleet.safeParse(input, { error: plainIssues });
  const r = new Report();
  if (!parsed.success) r.errors.push(...schemaErrors(parsed.error));
  const parts = parsed.success ? wellTyped(parsed.data, true) : wellTyped(input, false);
  const knownTags = new Set([...(parts.hosts?.values() ?? [])].flatMap((h) => h.tags ?? []));
  checkHosts(parts, r);
  checkChannelsAndPolicies(parts, r);
  checkSelectors(parts, r, knownTags);
  checkEdges(parts, r);
  checkBudgets(parts, r);
  checkComplianceReferences(parts.channels, parts.frameworks, r);
  // Resolution needs every host and policy (count and percent waves depend on the channel's size), and
  // warnings about a half-typed fleet could be echoes of its schema errors: both wait for a clean schema.
  if (!parsed.success) return { ok: false, errors: r.errors, warnings: [] };
  const fleet = parsed.data;
  revokedHostWarnings(fleet, r);
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
  // Static controls read facts through frameworks: only once every reference resolves.
  if (r.errors.length === 0) checkStaticControls(fleet, r);
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
