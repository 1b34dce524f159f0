import { connect } from 'node:net';
import { clip, type ProbeResult } from './probe.ts';

/** ok when a TCP connection to host:port is established before timeoutMs. */
export function tcpProbe(
  name: string,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let settled = false;
    const done = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ name, ok, detail: clip(detail) });
    };
    const timer = setTimeout(
      () => done(false, `no connection to ${host}:${port} within ${timeoutMs} ms`),
      timeoutMs,
    );
    socket.once('connect', () => done(true, `connected to ${host}:${port}`));
    socket.once('error', (e) => done(false, `connect to ${host}:${port} failed: ${e.message}`));
  });
}
