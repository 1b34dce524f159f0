// Runs the manifest's probes and applies the consecutive-pass rule: a host is healthy only after
// `passesRequired` consecutive rounds in which every probe passed. A failing round resets the count.
// A fresh ProbeSession is created for each activation, so results never carry over.
import type { Probe } from '../../protocol/schemas/release.ts';
import { commandProbe } from './command.ts';
import { httpProbe } from './http.ts';
import type { ProbeResult } from './probe.ts';
import { tcpProbe } from './tcp.ts';

export type { ProbeResult } from './probe.ts';

export function runProbe(probe: Probe): Promise<ProbeResult> {
  switch (probe.kind) {
    case 'http':
      return httpProbe(probe.name, probe.url, probe.expectStatus, probe.timeoutMs);
    case 'tcp':
      return tcpProbe(probe.name, probe.host, probe.port, probe.timeoutMs);
    case 'command':
      return commandProbe(probe.name, probe.argv, probe.expectExit, probe.timeoutMs);
    case 'systemd':
      return probe.unit
        ? commandProbe(probe.name, ['systemctl', 'is-active', '--quiet', probe.unit], 0, 10_000)
        : commandProbe(probe.name, ['sh', '-c', 'test -z "$(systemctl list-units --state=failed --no-legend --plain)"'], 0, 10_000);
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

  /** One round: every probe in parallel. Returns true when the host has now reached `healthy`. */
  async round(): Promise<boolean> {
    const results = await Promise.all([...this.probes.map(runProbe), this.extra().then((r) => r, (e: Error) => [{ name: 'activator', ok: false, detail: e.message.slice(0, 256) }])]);
    this.lastResults = results.flat();
    const allOk = this.lastResults.every((r) => r.ok);
    this.consecutive = allOk ? this.consecutive + 1 : 0;
    return this.healthy;
  }
}
