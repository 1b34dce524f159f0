import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { clip, type ProbeResult } from './probe.ts';

/** GET url; ok when the status equals expectStatus before timeoutMs. The body is discarded. */
export function httpProbe(
  name: string,
  url: string,
  expectStatus: number,
  timeoutMs: number,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ name, ok, detail: clip(detail) });
    };
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve({ name, ok: false, detail: `invalid URL ${url}` });
      return;
    }
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      { method: 'GET', agent: false },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        done(
          status === expectStatus,
          `HTTP ${status}${status === expectStatus ? '' : ` (expected ${expectStatus})`}`,
        );
      },
    );
    const timer = setTimeout(() => done(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    req.on('error', (e) => done(false, `request failed: ${e.message}`));
    req.end();
  });
}
