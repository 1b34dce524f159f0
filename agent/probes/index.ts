// Runs the manifest's probes and applies the consecutive-pass rule: a host is healthy only after
// `passesRequired` consecutive rounds in which every probe passed. A failing round resets the count.
// A fresh ProbeSession is created for each activation, so results never carry over.
import type { Probe } from '../../protocol/index.ts';
import { commandProbe } from './command.ts';
import { httpProbe } from './http.ts';
import type { ProbeResult } from './probe.ts';
import { tcpProbe } from './tcp.ts';

/** systemd probes have no timeout of their own in the manifest. */
const SYSTEMD_PROBE_TIMEOUT_MS = 10_000;

/** Runs one probe; `capMs` (the time left in the confirm window) shortens its own timeout. */
export function runProbe(probe: Probe, capMs = Infinity): Promise<ProbeResult> {
  const within = (ms: number) => Math.max(1, Math.min(ms, capMs));
  switch (probe.kind) {
    case 'http':
      return httpProbe(probe.name, probe.url, probe.expectStatus, within(probe.timeoutMs));
    case 'tcp':
      return tcpProbe(probe.name, probe.host, probe.port, within(probe.timeoutMs));
    case 'command':
      return commandProbe(probe.name, probe.argv, probe.expectExit, within(probe.timeoutMs));
    case 'systemd':
      return probe.unit
        ? commandProbe(
            probe.name,
            ['systemctl', 'is-active', '--quiet', probe.unit],
            0,
            within(SYSTEMD_PROBE_TIMEOUT_MS),
          )
        : commandProbe(
            probe.name,
            ['sh', '-c', 'test -z "$(systemctl list-units --state=failed --no-legend --plain)"'],
            0,
            within(SYSTEMD_PROBE_TIMEOUT_MS),
          );
  }
}

export type ExtraCheck = () => Promise<ProbeResult[]>;

export class ProbeSession {
  private consecutive = 0;
  lastResults: ProbeResult[] = [];

  constructor(
    private readonly probes: readonly Probe[],
    readonly passesRequired: number,
    private readonly extra: ExtraCheck = async () => [],
  ) {}

  get passes(): number {
    return this.consecutive;
  }

  get healthy(): boolean {
    return this.consecutive >= this.passesRequired;
  }

  /**
   * One round: every probe in parallel, none longer than `budgetMs` (the time left before the confirm
   * deadline). Returns true when the host has now reached `healthy`.
   */
  async round(budgetMs = Infinity): Promise<boolean> {
    const extra = this.extra().then(
      (r) => r,
      (e: Error) => [{ name: 'activator', ok: false, detail: e.message.slice(0, 256) }],
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<ProbeResult[]>((resolve) => {
      if (Number.isFinite(budgetMs))
        timer = setTimeout(
          () =>
            resolve([
              {
                name: 'activator',
                ok: false,
                detail: `no self-check answer within ${Math.round(budgetMs)} ms`,
              },
            ]),
          Math.max(1, budgetMs),
        );
    });
    const results = await Promise.all([
      ...this.probes.map((p) => runProbe(p, budgetMs)),
      Promise.race([extra, late]),
    ]);
    clearTimeout(timer);
    this.lastResults = results.flat();
    const allOk = this.lastResults.every((r) => r.ok);
    this.consecutive = allOk ? this.consecutive + 1 : 0;
    return this.healthy;
  }
}
