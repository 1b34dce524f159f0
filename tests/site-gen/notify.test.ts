// Notifications from `site watch`: a real fleet (lab control plane + agents) reaches a halted channel
// with a rolled-back host and a completed channel; events go once to a real command (argv, no shell) and
// to a real local HTTP receiver, each carrying the signed acks that prove it; a restart repeats nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { verifyAck } from '../../protocol/acks.ts';
import { readPinnedRoot } from '../../protocol/pinned-root.ts';
import { Notifier, NotifyStateInvalid, type FleetEvent } from '../../site-gen/notify.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, badIsUnhealthy, labFleet, NEW, BAD } from '../agent/lab-fleet.ts';

test('halted, failed and complete events: delivered once to a command and a webhook, with verifiable acks', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['g1', 'b1'], {
    activator: badIsUnhealthy,
  });
  const work = mkdtempSync(join(tmpdir(), 'nf-notify-'));
  const received: FleetEvent[] = [];
  let failWebhook = true;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (failWebhook) {
        res.writeHead(500).end();
        return;
      }
      received.push(JSON.parse(body) as FleetEvent);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    lab.publish(
      labFleet(lab, {
        good: { hosts: { g1: NEW }, waves: [{ soakSeconds: 0 }] },
        bad: { hosts: { b1: BAD }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 2 },
      }),
    );
    await lab.startControlPlane();
    const g = await runAgentOnce(lab.agentConfig('g1', { probeIntervalMs: 100 }), {
      log: memoryLogger('g1'),
    });
    assert.ok(g.kind === 'decided' && g.acted === 'confirmed', JSON.stringify(g));
    const b = await runAgentOnce(lab.agentConfig('b1', { probeIntervalMs: 100 }), {
      log: memoryLogger('b1'),
    });
    assert.ok(b.kind === 'decided' && b.acted === 'rolled-back', JSON.stringify(b));
    lab.cp!.ackService.publisher.flush();
    const pinnedRoot = readPinnedRoot(lab.rootFile);

    // A real command, run without a shell: the argument with shell syntax arrives verbatim.
    const outDir = join(work, 'cmd-out');
    const script = join(work, 'record.mjs');
    writeFileSync(
      script,
      `import { readFileSync, writeFileSync } from 'node:fs';
const [dir, marker] = process.argv.slice(2);
const ev = JSON.parse(readFileSync(0, 'utf8'));
writeFileSync(dir + '/' + encodeURIComponent(ev.id) + '.json', JSON.stringify({ ev, marker, env: process.env.NIXFLEET_EVENT }));
`,
    );
    const { mkdirSync, readdirSync } = await import('node:fs');
    mkdirSync(outDir);
    const cmdState = join(work, 'cmd-state.json');
    const cmd = new Notifier({
      treeDir: lab.treeDir,
      pinnedRoot,
      target: {
        kind: 'command',
        argv: [process.execPath, script, outDir, '$(touch pwned); "quoted"'],
      },
      stateFile: cmdState,
    });
    await cmd.check(Date.now());
    const files = readdirSync(outDir).sort();
    const events = files.map(
      (f) =>
        JSON.parse(readFileSync(join(outDir, f), 'utf8')) as {
          ev: FleetEvent;
          marker: string;
          env: string;
        },
    );
    const kinds = events.map((e) => e.ev.kind).sort();
    assert.equal(kinds, ['channel-complete', 'channel-halted', 'host-failed'], files.join(','));
    assert.ok(events.every((e) => e.marker === '$(touch pwned); "quoted"' && e.env === e.ev.kind));
    assert.not.ok(existsSync(join(work, 'pwned')) || existsSync('pwned'), 'no shell ran');
    // Each event carries the signed acks that prove it, verifiable with the host keys of the release.
    const failed = events.find((e) => e.ev.kind === 'host-failed')!.ev;
    assert.is(failed.host, 'b1');
    assert.is(failed.evidence.length, 1);
    const ack = failed.evidence[0] as { signed: { kind: string; host: string } };
    assert.is(ack.signed.kind, 'rolled-back');
    const hostKeys = new Map(
      Object.entries({ b1: lab.hostKeyB64('b1'), g1: lab.hostKeyB64('g1') }),
    );
    verifyAck(failed.evidence[0] as never, { fleet: 'lab', hostKeys }, 'evidence');
    const halted = events.find((e) => e.ev.kind === 'channel-halted')!.ev;
    assert.is(halted.channel, 'bad');
    assert.is(halted.evidence.length, 1);
    const complete = events.find((e) => e.ev.kind === 'channel-complete')!.ev;
    assert.is(complete.channel, 'good');
    assert.is((complete.evidence[0] as { signed: { host: string } }).signed.host, 'g1');
    verifyAck(complete.evidence[0] as never, { fleet: 'lab', hostKeys }, 'evidence');

    // Once per event: another check, and a restarted notifier on the same state file, deliver nothing new.
    await cmd.check(Date.now());
    const restarted = new Notifier({
      treeDir: lab.treeDir,
      pinnedRoot,
      target: { kind: 'command', argv: [process.execPath, script, outDir, 'again'] },
      stateFile: cmdState,
    });
    await restarted.check(Date.now());
    assert.equal(readdirSync(outDir).sort(), files);
    assert.ok(
      events.every(
        (e) =>
          JSON.parse(readFileSync(join(outDir, encodeURIComponent(e.ev.id) + '.json'), 'utf8'))
            .marker !== 'again',
      ),
    );

    // A webhook that fails is retried after the next check; nothing is marked delivered before it succeeds.
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const logs: Record<string, unknown>[] = [];
    const hookState = join(work, 'hook-state.json');
    const hook = new Notifier({
      treeDir: lab.treeDir,
      pinnedRoot,
      target: { kind: 'webhook', url },
      stateFile: hookState,
      log: (e) => logs.push(e),
    });
    await hook.check(Date.now());
    assert.is(received.length, 0);
    assert.is(logs.filter((l) => l['event'] === 'notify-failed').length, 3);
    assert.not.ok(existsSync(hookState));
    failWebhook = false;
    await hook.check(Date.now());
    assert.equal(received.map((e) => e.kind).sort(), [
      'channel-complete',
      'channel-halted',
      'host-failed',
    ]);
    await hook.check(Date.now());
    assert.is(received.length, 3, 'delivered once');

    // A damaged state file is refused with its name, not silently reset (that would repeat every event).
    writeFileSync(hookState, '{"notified": 5}');
    assert.throws(
      () =>
        new Notifier({
          treeDir: lab.treeDir,
          pinnedRoot,
          target: { kind: 'webhook', url },
          stateFile: hookState,
        }),
      (e: unknown) => e instanceof NotifyStateInvalid && (e as Error).message.includes(hookState),
    );
  } finally {
    server.close();
    await lab.close();
  }
});

test.run();
