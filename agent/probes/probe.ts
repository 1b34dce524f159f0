// One health probe run: never throws, always resolves to a verdict with a short human detail
// (it travels in the signed healthy/failed ack, capped at 256 characters by the ack schema).
import type { Probe } from '../../protocol/index.ts';

export interface ProbeResult {
  name: string;
  ok: boolean;
  detail: string;
}

export function clip(detail: string): string {
  return detail.length <= 256 ? detail : detail.slice(0, 253) + '...';
}

export type ProbeRunner = (probe: Probe) => Promise<ProbeResult>;
