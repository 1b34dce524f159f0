// Compliance in the fleet (issue 13): frameworks of controls, named by channels with a mode. This file
// is the publisher's one place for them: the references validate.ts checks, the static controls CI
// evaluates from each host's configuration facts, and what the release signs (the channel plan's
// `compliance`, each host manifest's `compliance`). nix/lib/validate.nix mirrors the checks and the
// evaluation with the same words (the fleet fixtures keep them equal).
import {
  canonicalBytes,
  didYouMean,
  EXCERPT_MAX,
  type ChannelCompliance,
  type HostCompliance,
  type RuntimeControl,
  type StaticControlResult,
} from '../protocol/index.ts';
import type { ComplianceFramework, Fleet, StaticExpect } from './fleet-schema.ts';

/** A host manifest carries at most this many (protocol/schemas/compliance.ts HostCompliance). */
export const MAX_RUNTIME_CONTROLS = 32;
export const MAX_STATIC_CONTROLS = 256;

/** How a JSON value is shown in evidence: canonical JSON (sorted keys), as Nix's toJSON prints it. */
function shown(v: unknown): string {
  return Buffer.from(canonicalBytes(v)).toString('utf8');
}

/** Evidence is for a table cell: at most EXCERPT_MAX characters, a cut marked with "...". */
function clipEvidence(text: string): string {
  return text.length <= EXCERPT_MAX ? text : `${text.slice(0, EXCERPT_MAX - 3)}...`;
}

function expectation(expect: StaticExpect): string {
  if ('equals' in expect) return shown(expect.equals);
  if ('oneOf' in expect) return `one of ${expect.oneOf.map(shown).join(', ')}`;
  return 'it to be set';
}

/**
 * One static control against a host's facts. A fact that is absent or null is "not set": it fails every
 * expectation (a control must never pass because CI could not read the option).
 */
export function evaluateStatic(
  fact: string,
  expect: StaticExpect,
  facts: Readonly<Record<string, unknown>> | undefined,
): { ok: boolean; evidence: string } {
  const value = facts?.[fact];
  const set = value !== undefined && value !== null;
  let ok: boolean;
  if (!set) ok = false;
  else if ('equals' in expect) ok = shown(value) === shown(expect.equals);
  else if ('oneOf' in expect) ok = expect.oneOf.some((v) => shown(v) === shown(value));
  else ok = true;
  const found = set ? `${fact} = ${shown(value)}` : `${fact} is not set`;
  return { ok, evidence: clipEvidence(ok ? found : `${found} (expected ${expectation(expect)})`) };
}

/** The controls of `frameworks` (in the channel's order), each framework's controls by id. */
function controlsOf(
  fleet: Fleet,
  frameworks: readonly string[],
): { framework: string; control: string; spec: ComplianceFramework['controls'][string] }[] {
  return frameworks.flatMap((framework) => {
    const f = fleet.complianceFrameworks?.[framework];
    if (!f) return [];
    return Object.keys(f.controls)
      .sort()
      .map((control) => ({ framework, control, spec: f.controls[control]! }));
  });
}

/** What a channel's plan signs about compliance, or undefined when it names no framework. */
export function channelCompliance(fleet: Fleet, channel: string): ChannelCompliance | undefined {
  const spec = fleet.channels[channel]?.compliance;
  if (!spec) return undefined;
  const runtime: RuntimeControl[] = [];
  for (const { framework, control, spec: c } of controlsOf(fleet, spec.frameworks))
    if (c.kind === 'runtime')
      runtime.push({
        framework,
        control,
        argv: c.argv,
        expectExit: c.expectExit,
        timeoutMs: c.timeoutMs,
      });
  return { mode: spec.mode, frameworks: spec.frameworks, runtime };
}

/** What a host's manifest signs about compliance: its channel's, plus its static controls' results. */
export function hostCompliance(fleet: Fleet, host: string): HostCompliance | undefined {
  const h = fleet.hosts[host];
  const channel = h && channelCompliance(fleet, h.channel);
  if (!h || !channel) return undefined;
  const results: StaticControlResult[] = [];
  for (const { framework, control, spec: c } of controlsOf(fleet, channel.frameworks))
    if (c.kind === 'static')
      results.push({ framework, control, ...evaluateStatic(c.fact, c.expect, h.facts) });
  return { ...channel, static: results };
}

// ---- validation -----------------------------------------------------------------------------------------

export interface ComplianceReport {
  error(path: string, msg: string): void;
  warn(path: string, msg: string): void;
}

/**
 * The references of each channel's compliance (well-typed parts only, see validate.ts): every framework
 * named must exist, once; and what the frameworks add up to must fit a host manifest.
 * `frameworks`: the declared frameworks (undefined: `complianceFrameworks` is not an object, nothing to
 * check against), each with its control kinds when the framework is well-typed.
 */
export function checkComplianceReferences(
  channels: ReadonlyMap<string, { compliance?: { frameworks: string[] } }> | undefined,
  frameworks: ReadonlyMap<string, { kinds?: ('static' | 'runtime')[] }> | undefined,
  r: ComplianceReport,
): void {
  if (!frameworks) return;
  for (const [name, c] of channels ?? []) {
    if (!c.compliance) continue;
    const seen = new Set<string>();
    let runtime = 0;
    let statics = 0;
    c.compliance.frameworks.forEach((f, i) => {
      const path = `channels.${name}.compliance.frameworks[${i}]`;
      if (seen.has(f)) r.error(path, `duplicate framework "${f}"`);
      else if (!frameworks.has(f))
        r.error(path, `unknown framework "${f}"${didYouMean(f, frameworks.keys())}`);
      else for (const k of frameworks.get(f)!.kinds ?? []) k === 'runtime' ? runtime++ : statics++;
      seen.add(f);
    });
    if (runtime > MAX_RUNTIME_CONTROLS)
      r.error(
        `channels.${name}.compliance`,
        `its frameworks have ${runtime} runtime controls, a host manifest holds at most ${MAX_RUNTIME_CONTROLS}`,
      );
    if (statics > MAX_STATIC_CONTROLS)
      r.error(
        `channels.${name}.compliance`,
        `its frameworks have ${statics} static controls, a host manifest holds at most ${MAX_STATIC_CONTROLS}`,
      );
  }
}

/**
 * Static controls, evaluated for every host of a compliance channel (a fleet that passed the schema and
 * the reference checks). `enforce`: a failing control is an error, so validate and publish refuse;
 * `permissive`: a warning, and the result is signed into the host's manifest.
 */
export function checkStaticControls(fleet: Fleet, r: ComplianceReport): void {
  for (const host of Object.keys(fleet.hosts).sort()) {
    const c = hostCompliance(fleet, host);
    if (!c) continue;
    const channel = fleet.hosts[host]!.channel;
    for (const s of c.static) {
      if (s.ok) continue;
      const what = `fails compliance control ${s.framework}/${s.control} of channel ${channel}`;
      if (c.mode === 'enforce') r.error(`hosts.${host}`, `${what} (enforce): ${s.evidence}`);
      else r.warn(`hosts.${host}`, `${what} (permissive, recorded in the release): ${s.evidence}`);
    }
  }
}
