// The view server's intake scheduling (cli/ack-intake.ts): the latest-ack files named by the watch on
// acks/hosts/ are handed to the intake in chunks on the look queue, and only theirs (not the endpoint's
// temporary files); a directory made after the start is watched once it exists. What an intake verifies
// is tested in tests/read-side/arrived-acks.test.ts, the server as a whole in view-server.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { INTAKE_CHUNK, startAckIntake } from '../../cli/ack-intake.ts';
import { LookQueue } from '../../cli/view-server.ts';

const dirs: string[] = [];
test.after.each(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * An intake on a fresh tree (no acks/hosts/ yet) that records what it is asked to take in; what it
 * takes in is ripe `ripeMs` later (the racy margin), and each ripening is recorded with its start.
 */
function intake(ripeMs = 300) {
  const tree = mkdtempSync(join(tmpdir(), 'nixfleet-ack-intake-'));
  dirs.push(tree);
  const taken: string[][] = [];
  const lines: string[] = [];
  const ripened: { startedAt: number; ripeAt: number }[] = [];
  let ripeAt: number | null = null;
  const bursts = { count: 0 };
  const started = startAckIntake({
    tree,
    queue: new LookQueue(() => {}, 60_000),
    arrived: {
      takeIn: (paths) => {
        taken.push([...paths].map((p) => basename(p)));
        ripeAt ??= Date.now() + ripeMs;
        return { verified: 0, refused: 0, skipped: 0 };
      },
      get nextRipeAt() {
        return ripeAt;
      },
      ripen: (startedAt) => {
        ripened.push({ startedAt, ripeAt: ripeAt! });
        if (startedAt < ripeAt!) return 0;
        ripeAt = null;
        return 1;
      },
    },
    log: (l) => void lines.push(l),
    watchRetryMs: 100,
    burst: () => void bursts.count++,
  });
  return {
    tree,
    hosts: join(tree, 'acks', 'hosts'),
    taken,
    ripened,
    bursts,
    lines,
    stop: started.stop,
  };
}

const until = async (what: string, ok: () => boolean) => {
  const deadline = Date.now() + 10_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not within 10 s: ${what}`);
    await new Promise((done) => setTimeout(done, 20));
  }
};

test('files renamed into acks/hosts/ are taken in, in chunks, and a directory made after the start is watched', async () => {
  const i = intake();
  try {
    // No acks/hosts/ yet: said, and tried again.
    assert.ok(
      i.lines.some((l) => /not watching .* yet/.test(l)),
      i.lines.join('\n'),
    );
    mkdirSync(i.hosts, { recursive: true });
    await new Promise((done) => setTimeout(done, 300));
    // As the endpoint writes them: a temporary dot file renamed into place.
    const n = INTAKE_CHUNK + 3;
    for (let k = 0; k < n; k++) {
      const tmp = join(i.hosts, `.h-${k}.json.tmp`);
      writeFileSync(tmp, '{}');
      renameSync(tmp, join(i.hosts, `h-${k}.json`));
    }
    await until('every file taken in', () => i.taken.flat().length >= n);
    assert.is(new Set(i.taken.flat()).size, n, 'each file once');
    assert.ok(
      i.taken.flat().every((f) => /^h-[0-9]+\.json$/.test(f)),
      'only latest-ack files',
    );
    assert.ok(
      i.taken.every((chunk) => chunk.length <= INTAKE_CHUNK),
      'in chunks',
    );
    assert.ok(i.taken.length >= 2);
    // A burst (a chunk of BURST_FILES or more), said once when all of it is taken in.
    await until('the burst said', () => i.bursts.count > 0);
    assert.is(i.bursts.count, 1);
  } finally {
    i.stop();
  }
});

test('what was taken in is ripened once it is ripe, not before and not again; nothing after stop', async () => {
  const i = intake();
  try {
    mkdirSync(i.hosts, { recursive: true });
    await new Promise((done) => setTimeout(done, 300));
    writeFileSync(join(i.hosts, 'h-1.json'), '{}');
    await until('ripened', () => i.ripened.length > 0);
    await new Promise((done) => setTimeout(done, 500));
    // One ripening, at or after the moment it was ripe (a timer never fires early; 1 ms of clocks).
    assert.is(i.ripened.length, 1, JSON.stringify(i.ripened));
    assert.ok(i.ripened[0]!.startedAt >= i.ripened[0]!.ripeAt - 1, JSON.stringify(i.ripened));
    // Taken in again, then stopped before it is ripe: no ripening after stop.
    writeFileSync(join(i.hosts, 'h-2.json'), '{}');
    await until('taken in again', () => i.taken.flat().length >= 2);
    i.stop();
    await new Promise((done) => setTimeout(done, 600));
    assert.is(i.ripened.length, 1, JSON.stringify(i.ripened));
    assert.is(i.bursts.count, 0, 'a file or two is no burst');
  } finally {
    i.stop();
  }
});

test.run();
