// Timer mode (issue 10): a run of a converged host with nothing changed costs one resumed TLS
// connection and one conditional GET per document that can change (timestamp, the wave bundles), all
// answered 304. The head GET of the ack loss check is skipped because the host's own ack in its wave
// bundle already proves the endpoint holds it; without that proof (bundle gone) the check still runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { TLS_SESSION_FILE } from '../../agent/tls-session.ts';
import { PUBLISH_GRACE_MS } from '../../agent/ack-sync.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, labFleet, NEW } from './lab-fleet.ts';
import { E2eStack } from '../support/e2e-stack.ts';

async function until(
  what: string,
  ms: number,
  check: () => Promise<boolean> | boolean,
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
}

type Done = { requests: number; notModified: number; connections: number; tlsResumed: number };

test('steady state: 3 conditional GETs, all 304, over one resumed TLS connection; the loss check falls back to the head without proof', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const hosts = ['t1', 't2', 't3'];
  const lab = makeLab(hosts);
  try {
    // Two waves: a host reads both bundles. Heartbeats far apart: no POST in a steady run.
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: Object.fromEntries(hosts.map((h) => [h, NEW])),
          waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
          heartbeatSeconds: 3600,
        },
      }),
    );
    await lab.startControlPlane();
    await until('converged', 30_000, async () => {
      const outs = await Promise.all(
        hosts.map((h) => runAgentOnce(lab.agentConfig(h), { log: memoryLogger(h) })),
      );
      return outs.every((o) => o.kind === 'decided' && o.decision === 'converged');
    });
    const cfg = lab.agentConfig('t1');
    const run = async () => {
      const log = memoryLogger('t1');
      const out = await runAgentOnce(cfg, { log });
      assert.equal([out.kind, out.kind === 'decided' && out.decision], ['decided', 'converged']);
      return { done: log.records.find((r) => r['event'] === 'cycle-done') as unknown as Done, log };
    };
    // Until the endpoint published everyone's last ack and the ETag cache holds it, runs still fetch.
    await until(
      'a steady run',
      20_000,
      async () => (await run()).done.notModified === (await run()).done.requests,
    );

    const { done } = await run();
    assert.equal(
      { requests: done.requests, notModified: done.notModified },
      { requests: 3, notModified: 3 },
      'timestamp + two wave bundles, no ack head GET',
    );
    assert.equal(
      { connections: done.connections, tlsResumed: done.tlsResumed },
      { connections: 1, tlsResumed: 1 },
      "the previous run's TLS session resumed",
    );

    // Without the kept session: a full handshake, same requests.
    rmSync(join(cfg.stateDir, TLS_SESSION_FILE));
    const full = (await run()).done;
    assert.equal([full.requests, full.tlsResumed], [3, 0]);

    // Our ack missing from the bundles (the endpoint's acks/ wiped while it runs): no proof, so the
    // head is fetched again (one request more) and, being gone too, the loss is detected.
    await new Promise((r) => setTimeout(r, PUBLISH_GRACE_MS)); // past the endpoint's publish delay
    rmSync(join(lab.treeDir, 'acks'), { recursive: true, force: true });
    const { done: noProof, log } = await run();
    assert.ok(noProof.requests >= 4, `the head GET is back: ${noProof.requests} requests`);
    assert.ok(
      log.records.some((r) => r['event'] === 'ack-loss-detected'),
      'the loss check ran',
    );
  } finally {
    await lab.close();
  }
});

test('through nginx (the rendered config): the next `nixfleet agent --once` process resumes the session (stateless ticket)', async () => {
  if (!requireTool('openssl', 'lab PKI') || !requireTool('nginx', 'the production control plane'))
    return;
  const stack = await E2eStack.create({ hosts: ['n1'] });
  try {
    stack.publish(
      labFleet(stack.lab, {
        // A generous confirm window: on a loaded machine the switch alone has taken 5 s (this test is
        // about TLS resumption, not the deadline).
        prod: {
          hosts: { n1: NEW },
          waves: [{ soakSeconds: 0 }],
          heartbeatSeconds: 3600,
          confirmDeadlineSeconds: 120,
        },
      }),
    );
    await stack.startControlPlane();
    const done = async () => {
      const r = await stack.runAgentOnce('n1');
      assert.is(r.code, 0, JSON.stringify(r.events.slice(-3)));
      return r.events.find((e) => e['event'] === 'cycle-done') as unknown as Done;
    };
    await until(
      'converged',
      60_000,
      async () => (await stack.runAgentOnce('n1')).outcome?.['decision'] === 'converged',
    );
    const first = await done();
    assert.is(
      first.tlsResumed,
      first.connections,
      `every connection resumed: ${JSON.stringify(first)}`,
    );
    assert.ok(first.connections >= 1);
    rmSync(join(stack.lab.host('n1').stateDir, TLS_SESSION_FILE));
    const full = await done();
    assert.is(full.tlsResumed, 0, 'no session kept: a full handshake');
    assert.is((await done()).tlsResumed, 1, 'and the one after resumes again');
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await stack.close();
  }
});

test.run();
