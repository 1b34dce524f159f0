// The published acks are served by nginx, whose ETag is mtime (whole seconds) + size, and agents read
// them with conditional GETs. A rewrite that kept both would be answered 304 and the agent would keep the
// older ack: an ack of the same size (the usual case: a host's healthy ack of the next release) rewritten
// just after a second boundary once kept the previous second, because the kernel stamps files from a
// coarse clock that lags Date.now() by a few ms. The e2e symptom was `ack-loss-detected` and a rollback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPublisher } from '../../control-plane/ack-publisher.ts';
import { latestAckPath } from '../../protocol/index.ts';

/** Sleeps until `ms` past the next second boundary. */
const untilNextSecond = (ms = 0) =>
  new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + ms));

test('every rewrite of a host head, even right after a second boundary, gets a later mtime second', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nf-ack-publisher-'));
  try {
    let head = '';
    const publisher = new AckPublisher(dir, () => head);
    const file = join(dir, latestAckPath('web1'));
    let previousSec = -1;
    for (let seq = 1; seq <= 6; seq++) {
      head = `{"seq":${seq}}`; // same size every time: only the mtime can change the ETag
      // Alternately mid-second (a flush right after a new release view) and right at the next boundary
      // (where the publisher's debounced flushes land, one calendar second apart).
      await untilNextSecond(seq % 2 === 1 ? 500 : 0);
      publisher.noteAccepted('web1');
      publisher.flush();
      assert.is(readFileSync(file, 'utf8'), head);
      const mtimeMs = statSync(file).mtimeMs;
      const sec = Math.floor(mtimeMs / 1000);
      if (seq > 1) {
        assert.is(
          mtimeMs % 1000,
          0,
          `rewrite ${seq}: mtime ${mtimeMs} set explicitly, whole seconds`,
        );
        assert.ok(sec > previousSec, `rewrite ${seq}: mtime second ${sec} after ${previousSec}`);
      }
      previousSec = sec;
    }
    publisher.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
