// The operator bench's live minute (bench/support/live-minute.ts) over a small generated fixture: the
// acks it writes are ones the real `nixfleet status` verifies and counts (a warm cache included: the
// cache filled a minute earlier does not hide them), and restoring puts every byte of the tree back,
// also when the run that applied the minute never restored it (killed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOperatorFixture, type OperatorFixture } from '../../bench/operator.bench.ts';
import { liveMinute } from '../../bench/support/live-minute.ts';
import { cutAckLog } from '../../bench/support/ack-segments.ts';
import { listAckLogSegments } from '../../protocol/ack-log.ts';
import { ackLogDir, ackLogPath } from '../../protocol/control-plane-dir.ts';
import type { SignedRoot } from '../../protocol/index.ts';
import { runCli } from '../support/cli.ts';

interface StatusJson {
  hosts: { host: string; lastAck: string | null; lastAckSeq: number | null }[];
  acks: { verified: number; rejected: unknown[] };
}

let dir = '';
let f: OperatorFixture;
let root: SignedRoot;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-live-minute-'));
  f = await buildOperatorFixture(dir, 120);
  root = JSON.parse(readFileSync(f.rootFile, 'utf8')) as SignedRoot;
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Every file under `d` (dot-files included) -> SHA-256 of its bytes. */
function digests(d: string, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(d).sort()) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) for (const e of digests(p, `${prefix}${name}/`)) out.set(...e);
    else out.set(prefix + name, createHash('sha256').update(readFileSync(p)).digest('hex'));
  }
  return out;
}

async function status(now: string, ...more: string[]): Promise<StatusJson> {
  const r = await runCli(
    'status',
    ...['--tree', f.tree, '--root', f.rootFile, '--now', now, '--json'],
    ...['--cache-dir', join(dir, 'cache'), ...more],
  );
  assert.is(r.code, 0, r.err);
  return JSON.parse(r.out) as StatusJson;
}

const seqs = (s: StatusJson) => new Map(s.hosts.map((h) => [h.host, h.lastAckSeq]));

test('a minute later: status verifies and shows every new ack; restore puts the tree back', async () => {
  const original = digests(f.tree);
  const before = await status(f.now);
  const minute = await liveMinute(dir, f.tree, root, f.now);
  assert.ok(minute.acks.size > 5, `${minute.acks.size} hosts post in the minute`);
  minute.apply();
  const after = await status(minute.now);
  assert.equal(after.acks.rejected, []);
  const seq0 = seqs(before);
  for (const h of after.hosts) {
    const posted = minute.acks.get(h.host);
    if (posted === undefined) {
      assert.is(h.lastAckSeq, seq0.get(h.host), h.host);
      continue;
    }
    const last = (JSON.parse(posted.at(-1)!) as { signed: { seq: number; time: string } }).signed;
    assert.is(h.lastAckSeq, seq0.get(h.host)! + posted.length, h.host);
    assert.is(last.seq, h.lastAckSeq, h.host);
    assert.is(h.lastAck, last.time, h.host);
  }
  // The one-host view, which keeps verified acks per scope, sees its host's new ack too.
  const [host, posted] = [...minute.acks][0]!;
  const one = await status(minute.now, '--host', host);
  assert.is(one.hosts.find((h) => h.host === host)!.lastAckSeq, seq0.get(host)! + posted.length);

  minute.restore();
  assert.equal(digests(f.tree), original);
  assert.equal(seqs(await status(f.now)), seq0);
  assert.not.ok(readdirSync(dir).includes('live-saved'));
});

test('a log cut into segments holds the same records, once; the minute appends to the current segment and restore puts it back', async () => {
  const logDir = ackLogDir(f.tree);
  const whole = readFileSync(ackLogPath(f.tree));
  const before = await status(f.now);
  // Segments of 16 KB (the endpoint's 8 MiB would leave this small log whole).
  const bounds = cutAckLog(logDir, 16 * 1024);
  assert.ok(bounds.length > 3, `${bounds.length} segments`);
  const segments = listAckLogSegments(logDir);
  assert.is(segments.length, bounds.length);
  const parts = segments.map((s) => readFileSync(s.file));
  assert.ok(Buffer.concat(parts).equals(whole), 'the segments are the log, in order');
  for (const p of parts) assert.is(p.at(-1), 0x0a, 'each segment ends at a record');
  assert.equal(cutAckLog(logDir, 16 * 1024), [], 'a cut log is not cut again');
  assert.equal(await status(f.now), before);

  const original = digests(f.tree);
  const minute = await liveMinute(dir, f.tree, root, f.now);
  minute.apply();
  assert.equal(
    listAckLogSegments(logDir)
      .map((s) => readFileSync(s.file).length)
      .slice(0, -1),
    parts.slice(0, -1).map((p) => p.length),
    'only the current segment grew',
  );
  assert.ok(statSync(segments.at(-1)!.file).size > parts.at(-1)!.length);
  minute.restore();
  assert.equal(digests(f.tree), original);
});

test('a minute applied and never restored (a killed run) is undone by the next liveMinute', async () => {
  const original = digests(f.tree);
  const first = await liveMinute(dir, f.tree, root, f.now);
  first.apply();
  assert.not.equal(digests(f.tree), original);
  assert.throws(() => first.apply(), /applied already/);
  const second = await liveMinute(dir, f.tree, root, f.now);
  assert.equal(digests(f.tree), original);
  assert.equal([...second.acks.keys()], [...first.acks.keys()]);
});

test.run();
