// Runtime compliance controls (issue 13): commands the agent runs after an activation, where the health
// probes run, and signs into its acks as evidence. Each runs with its argv executed directly (never a
// shell), in its own process group (killed whole on timeout), with bounded time and bounded captured
// output; the evidence carries a digest of what was captured and a short, sanitised excerpt.
import { spawn } from 'node:child_process';
import {
  EXCERPT_MAX,
  sha256Digest,
  type ChannelCompliance,
  type ControlEvidence,
  type HostManifest,
  type RuntimeControl,
} from '../protocol/index.ts';
import { describeFailing, judgeEvidence } from '../reconciler/index.ts';

/** A control's stdout+stderr is captured up to 1 MiB (a log dump must not fill the agent's memory). */
export const OUTPUT_CAP = 1024 * 1024;

/** What a pending activation and the agent state keep of the manifest's compliance (runtime half). */
export type RuntimeCompliance = Pick<ChannelCompliance, 'mode' | 'runtime'>;

export function runtimeComplianceOf(m: HostManifest): RuntimeCompliance | undefined {
  return m.compliance && m.compliance.runtime.length > 0
    ? { mode: m.compliance.mode, runtime: m.compliance.runtime }
    : undefined;
}

/**
 * C0/C1 controls, DEL and the bidi controls become spaces, runs of white space one space: an excerpt is
 * shown in terminals and tables (cli/terminal.ts guards the sink too; evidence outlives any one sink).
 */
function sanitise(text: string): string {
  return text
    .replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

function excerptOf(prefix: string, output: Buffer): string {
  const text = sanitise([prefix, output.toString('utf8')].filter(Boolean).join(': '));
  return text.length <= EXCERPT_MAX ? text : `${text.slice(0, EXCERPT_MAX - 3)}...`;
}

/** Runs one control for at most min(timeoutMs, capMs); never throws. */
export function runRuntimeControl(c: RuntimeControl, capMs = Infinity): Promise<ControlEvidence> {
  const timeoutMs = Math.max(1, Math.min(c.timeoutMs, capMs));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let captured = 0;
    let truncated = false;
    let settled = false;
    const finish = (exitCode: number | null, why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const output = Buffer.concat(chunks);
      const note = truncated ? `${why}${why ? ', ' : ''}output cut at ${OUTPUT_CAP} bytes` : why;
      resolve({
        framework: c.framework,
        control: c.control,
        ok: exitCode !== null && exitCode === c.expectExit,
        exitCode,
        outputDigest: sha256Digest(output),
        excerpt: excerptOf(note, output),
      });
    };
    const [cmd, ...args] = c.argv;
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const timer = setTimeout(() => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      finish(null, `timed out after ${timeoutMs} ms`);
    }, timeoutMs);
    const take = (d: Buffer) => {
      const room = OUTPUT_CAP - captured;
      if (room <= 0) {
        truncated = true;
        return;
      }
      const part = d.length > room ? d.subarray(0, room) : d;
      if (part.length < d.length) truncated = true;
      chunks.push(part);
      captured += part.length;
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('error', (e) => finish(null, `cannot run ${cmd}: ${e.message}`));
    child.once('close', (code, signal) => finish(code, code === null ? `killed by ${signal}` : ''));
  });
}

/**
 * Every runtime control, one after another (they inspect the system; running them in parallel could
 * make them disturb each other), each within what is left of `budgetMs`.
 */
export async function runRuntimeControls(
  controls: readonly RuntimeControl[],
  budgetMs = Infinity,
  now: () => number = Date.now,
): Promise<ControlEvidence[]> {
  const end = now() + budgetMs;
  const out: ControlEvidence[] = [];
  for (const c of controls) out.push(await runRuntimeControl(c, Math.max(1, end - now())));
  return out;
}

/**
 * In `enforce`, why the evidence fails the activation (naming framework and control); null when it
 * passes or the channel is `permissive` (recorded and shown, nothing more).
 */
export function enforcedFailure(
  c: RuntimeCompliance | undefined,
  evidence: readonly ControlEvidence[],
): string | null {
  if (c?.mode !== 'enforce') return null;
  const v = judgeEvidence(c.runtime, evidence);
  if (v.failing.length > 0)
    return `compliance control failed (enforce): ${describeFailing(v.failing)}`;
  if (v.missing.length > 0) return `compliance control not run (enforce): ${v.missing.join(', ')}`;
  return null;
}
