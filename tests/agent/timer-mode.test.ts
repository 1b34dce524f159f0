// Timer mode (issue 10): a run of a converged host with nothing changed costs one resumed TLS
// connection and as few conditional GETs as its decision needs, all answered 304. Under `halt` its
// decision cannot read its peers' acks (reconciler decisionReadsPeerAcks), so it reads only
// timestamp.json; the ack loss check (one GET of its own head) runs at LOSS_CHECK_INTERVAL_MS, so a
// lost ack is re-posted within that bound. Under rollback-and-halt it reads its wave bundles every run
// (a halted wave rolls it back), and its own ack there spares the head GET; without that proof (bundle
// gone) the head is fetched. Requests are counted at the control plane (its /metrics counters).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync } from 'node:fs';
import type { SignedAck } from '../../protocol/acks.ts';
import { join } from 'node:path';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { TLS_SESSION_FILE } from '../../agent/tls-session.ts';
import { LOSS_CHECK_INTERVAL_MS, PUBLISH_GRACE_MS } from '../../agent/ack-sync.ts';
import { requireTool } from '../support/skip.ts';
import type { Lab } from '../support/lab.ts';
import { makeLab, badIsUnhealthy, labFleet, journal, current, OLD, NEW, BAD } from './lab-fleet.ts';
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

/** Requests the lab's control plane answered so far, by "route code" (its /metrics counters). */
function served(lab: Lab): Map<string, number> {
  const out = new Map<string, number>();
  const text = lab.cp!.metrics.render(lab.cp!.ackService, Date.now());
  for (const m of text.matchAll(
    /^nixfleet_cp_requests_total\{route="([^"]+)",code="(\d+)"\} (\d+)$/gm,
  ))
    out.set(`${m[1]} ${m[2]}`, Number(m[3]));
  return out;
}

/** What the control plane answered during `f`: "route code" -> count, only the ones that moved. */
async function countAtServer<T>(
  lab: Lab,
  f: () => Promise<T>,
): Promise<[T, Record<string, number>]> {
  const before = served(lab);
  const r = await f();
  const moved: Record<string, number> = {};
  for (const [k, n] of served(lab))
    if (n !== (before.get(k) ?? 0)) moved[k] = n - (before.get(k) ?? 0);
  return [r, moved];
}

function runner(lab: Lab, host: string) {
  const cfg = lab.agentConfig(host);
  return async (opts: { now?: () => number } = {}) => {
    const log = memoryLogger(host);
    const out = await runAgentOnce(cfg, { log, ...opts });
    const done = log.records.find((r) => r['event'] === 'cycle-done') as unknown as Done;
    return { out, done, log, events: (e: string) => log.records.filter((r) => r['event'] === e) };
  };
}

test('steady state under halt: one GET (timestamp.json, 304) over one resumed connection, counted at the server; a lost ack is re-posted at the loss-check bound', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const hosts = ['t1', 't2', 't3'];
  const lab = makeLab(hosts);
  try {
    // Two waves, `halt`. Heartbeats far apart: no POST in a steady run.
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: Object.fromEntries(hosts.map((h) => [h, NEW])),
          waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
          heartbeatSeconds: 3600,
          onFailure: 'halt',
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
    const run = runner(lab, 't1');
    // Until the ETag cache holds the last fetched timestamp, a run still fetches it.
    await until('a steady run', 20_000, async () => {
      const r = await run();
      return r.done.notModified === r.done.requests;
    });

    const [steady, atServer] = await countAtServer(lab, () => run());
    assert.equal(
      [steady.out.kind, steady.out.kind === 'decided' && steady.out.decision],
      ['decided', 'converged'],
    );
    assert.equal(atServer, { 'tree 304': 1 }, 'the control plane answered one request: a 304');
    assert.equal(
      { requests: steady.done.requests, notModified: steady.done.notModified },
      { requests: 1, notModified: 1 },
      'timestamp.json only: no wave bundle, no ack head',
    );
    assert.equal(
      { connections: steady.done.connections, tlsResumed: steady.done.tlsResumed },
      { connections: 1, tlsResumed: 1 },
      "the previous run's TLS session resumed",
    );
    assert.is(steady.events('ack-loss-check').length, 0, 'the loss check is not due');

    // Without the kept session: a full handshake, same request.
    rmSync(join(lab.host('t1').stateDir, TLS_SESSION_FILE));
    const full = (await run()).done;
    assert.equal([full.requests, full.tlsResumed], [1, 0]);

    // The control plane loses every ack (log and published files: a box restored from nothing).
    // Within the bound nothing notices (no request looks at the acks) ...
    await lab.stopControlPlane();
    rmSync(join(lab.treeDir, '.ack-log'), { recursive: true, force: true });
    rmSync(join(lab.treeDir, 'acks'), { recursive: true, force: true });
    await lab.startControlPlane();
    await new Promise((r) => setTimeout(r, PUBLISH_GRACE_MS)); // past the endpoint's publish delay
    const [within, withinAtServer] = await countAtServer(lab, () => run());
    assert.equal(withinAtServer, { 'tree 304': 1 }, 'within the bound: still the timestamp only');
    assert.is(within.events('ack-loss-detected').length, 0);

    // ... and the first run at the bound checks our head (gone), finds the loss and re-posts.
    const mine = journal(lab, 't1');
    const [atBound, atBoundServer] = await countAtServer(lab, () =>
      run({ now: () => Date.now() + LOSS_CHECK_INTERVAL_MS }),
    );
    assert.equal(
      [atBound.out.kind, atBound.out.kind === 'decided' && atBound.out.decision],
      ['decided', 'converged'],
    );
    assert.is(atBound.events('ack-loss-check').length, 1, 'the check ran, at its bound');
    assert.is(atBound.events('ack-loss-detected').length, 1, 'the loss was found');
    const reposted = atBound.events('acks-reposted')[0];
    assert.ok(reposted, 'and the lost acks were posted again');
    assert.is(reposted['count'], mine.length, 'every ack of the journal');
    assert.is(atBoundServer['acks 404'], 1, 'one GET of our head (gone)');
    assert.is(atBoundServer['acks 201'], mine.length, 'one POST per lost ack');
    assert.is(lab.cp!.ackService.head('t1')?.seq, mine.at(-1)!.seq, 'the endpoint holds them all');
  } finally {
    await lab.close();
  }
});

test('rollback-and-halt: a converged host reads its wave bundle every run and rolls back when its wave halts; without its own ack there, the loss check GETs the head', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['k1', 'k2'], {
    activator: badIsUnhealthy,
  });
  const publish = (k2: string) =>
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { k1: NEW, k2 },
          waves: [{ soakSeconds: 0 }],
          heartbeatSeconds: 3600,
          onFailure: 'rollback-and-halt',
          confirmDeadlineSeconds: 5,
        },
      }),
    );
  try {
    // k2 stays on what it runs (its target is its current generation) until k1 converged.
    publish(OLD);
    await lab.startControlPlane();
    const run = runner(lab, 'k1');
    const first = await run();
    assert.equal(
      first.out.kind === 'decided' && first.out.acted,
      'confirmed',
      JSON.stringify(first.out),
    );
    // The soak proof (soak 0: a heartbeat a second after the healthy ack) is published within a
    // second or so (the endpoint's files are rewritten at most once a second).
    await until('our latest ack published', 20_000, async () => {
      const published = readFileSync(join(lab.treeDir, 'acks', 'hosts', 'k1.json'), 'utf8');
      return (JSON.parse(published) as SignedAck).signed.seq === lab.cp!.ackService.head('k1')?.seq;
    });
    await until('a steady run', 20_000, async () => {
      const r = await run();
      return r.done.requests > 0 && r.done.notModified === r.done.requests;
    });
    const [steady, atServer] = await countAtServer(lab, () => run());
    assert.ok(steady.out.kind === 'decided' && steady.out.decision === 'converged');
    assert.equal(
      atServer,
      { 'tree 304': 1, 'acks 304': 1 },
      'the timestamp and the wave bundle (our ack in it: no head GET)',
    );

    // Without our ack in the bundle (the published acks wiped): no proof, so the head is fetched.
    await new Promise((r) => setTimeout(r, PUBLISH_GRACE_MS));
    rmSync(join(lab.treeDir, 'acks'), { recursive: true, force: true });
    const [noProof, noProofAtServer] = await countAtServer(lab, () => run());
    assert.is(noProofAtServer['acks 404'], 2, 'the bundle and then our head: both gone');
    assert.is(noProof.events('ack-loss-detected').length, 1, 'the loss check ran');

    // k2's target fails: its signed rolled-back ack halts the wave, and k1 reads it and rolls back.
    publish(BAD);
    const bad = await runAgentOnce(lab.agentConfig('k2'), { log: memoryLogger('k2') });
    assert.equal(bad.kind === 'decided' && bad.acted, 'rolled-back');
    await until('k1 rolled back by policy', 20_000, async () => {
      const r = await run();
      return r.out.kind === 'decided' && r.out.decision === 'rollback';
    });
    assert.is(await current(lab, 'k1'), OLD, 'back on the generation recorded before the switch');
  } finally {
    await lab.close();
  }
});

test('a heartbeat far longer than the soak: the soak proof is posted once, at the first run after the soak, and the next wave starts', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['s1', 's2']);
  const SOAK_MS = 20_000;
  try {
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { s1: NEW, s2: NEW },
          waves: [{ count: 1, soakSeconds: SOAK_MS / 1000 }, { soakSeconds: 0 }],
          heartbeatSeconds: 3600,
        },
      }),
    );
    await lab.startControlPlane();
    // The channel's stable order decides which host is wave 0: the one that activates.
    const tried = await runner(lab, 's1')();
    const [w0, w1] =
      tried.out.kind === 'decided' && tried.out.decision === 'wait' ? ['s2', 's1'] : ['s1', 's2'];
    const s1 = runner(lab, w0!);
    const s2 = runner(lab, w1!);
    const first = w0 === 's1' ? tried : await s1();
    assert.equal(
      first.out.kind === 'decided' && first.out.acted,
      'confirmed',
      JSON.stringify(first.out),
    );
    const healthy = journal(lab, w0!).at(-1)!;
    assert.is(healthy.kind, 'healthy');
    const since = Date.parse(healthy.healthySince!);
    // Soaking: nothing to post (the heartbeat is an hour away), and wave 1 waits.
    await s1({ now: () => since + SOAK_MS - 1000 });
    assert.is(journal(lab, w0!).length, healthy.seq, 'no ack before the soak elapsed');
    const waiting = await s2({ now: () => since + SOAK_MS - 1000 });
    assert.equal(
      waiting.out.kind === 'decided' && [
        waiting.out.decision,
        waiting.events('decision')[0]!['gate'],
      ],
      ['wait', 'earlier-waves'],
    );
    // The first run after the soak posts the proof; the one after posts nothing more.
    await s1({ now: () => since + SOAK_MS });
    const proof = journal(lab, w0!).at(-1)!;
    assert.equal([proof.seq, proof.kind], [healthy.seq + 1, 'heartbeat'], 'the soak proof');
    assert.is(Date.parse(proof.time) - Date.parse(proof.healthySince!), SOAK_MS);
    await s1({ now: () => since + SOAK_MS + 1000 });
    assert.is(journal(lab, w0!).length, proof.seq, 'one proof, then the heartbeat interval again');
    // Wave 1 opens on that proof (once the endpoint published it).
    await until('wave 1 starts', 15_000, async () => {
      const r = await s2({ now: () => since + SOAK_MS + 2000 });
      return r.out.kind === 'decided' && r.out.decision === 'activate';
    });
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
