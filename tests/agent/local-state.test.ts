import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { z } from 'zod';
import { LocalStateError, StateDir } from '../../agent/state-dir.ts';
import { acquireLock, LOCK_FILE } from '../../agent/lock.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import {
  readPending,
  writePending,
  clearPending,
  currentBootId,
  type PendingRecord,
} from '../../agent/pending.ts';
import { AckJournal, ACK_JOURNAL_FILE, type AckFields } from '../../agent/ack-journal.ts';
import { newSigningKey, b64 } from '../../protocol/keys.ts';
import { ackDigest, verifyAckSignature } from '../../protocol/acks.ts';
import { Malformed } from '../../protocol/errors.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'nf-agent-state-'));
  dirs.push(d);
  return d;
}
test.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const T1 = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-system-1';
const T2 = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-system-2';

test('state dir round-trips and refuses a corrupted file, naming it', () => {
  const s = new StateDir(tmp());
  const Schema = z.strictObject({ n: z.number().int() });
  assert.is(s.read('x.json', Schema), undefined);
  s.write('x.json', Schema, { n: 3 });
  assert.equal(s.read('x.json', Schema), { n: 3 });
  writeFileSync(s.path('x.json'), '{"n":3,"n":4}');
  assert.throws(
    () => s.read('x.json', Schema),
    (e: Error) =>
      e instanceof LocalStateError &&
      e.problem === 'damaged' &&
      e.message.includes('x.json') &&
      !(e instanceof Malformed),
  );
  writeFileSync(s.path('x.json'), '{"n":3,"extra":1}');
  assert.throws(
    () => s.read('x.json', Schema),
    (e: Error) => e instanceof LocalStateError && /extra|unrecognized/i.test(e.message),
  );
});

test('lock: second holder refused while the first lives; a dead owner is taken over', async () => {
  const d = tmp();
  const a = acquireLock(d);
  assert.ok(a.acquired);
  const b = acquireLock(d);
  assert.not.ok(b.acquired);
  if (!b.acquired) assert.is(b.heldBy, process.pid);
  if (a.acquired) a.lock.release();
  const c = acquireLock(d);
  assert.ok(c.acquired);
  if (c.acquired) c.lock.release();
  // A lock left behind by a process that died (kill -9) is stale.
  const child = spawn(process.execPath, ['-e', '0']);
  const deadPid = child.pid!;
  await new Promise((r) => child.on('exit', r));
  writeFileSync(join(d, LOCK_FILE), `${deadPid}\n`);
  const e = acquireLock(d);
  assert.ok(e.acquired, 'stale lock taken over');
  if (e.acquired) e.lock.release();
});

test('quarantine: add, expiry, clear one or all', () => {
  const q = new Quarantine(new StateDir(tmp()));
  const now = Date.parse('2030-01-01T00:00:00Z');
  q.add(T1, 'rolled back', now, 24, 3);
  q.add(T2, 'switch failed', now, 1, 3);
  assert.ok(q.isQuarantined(T1, now + 23 * 3600_000));
  assert.not.ok(q.isQuarantined(T1, now + 24 * 3600_000), 'expired after 24 h');
  assert.is(q.active(now + 2 * 3600_000).length, 1);
  assert.equal(
    q.clear(T1, now).map((e) => e.target),
    [T1],
  );
  assert.equal(
    q.active(now).map((e) => e.target),
    [T2],
  );
  q.add(T1, 'again', now, 24, 4);
  assert.is(q.clear(undefined, now).length, 2);
  assert.is(q.active(now).length, 0);
});

test('pending record persists and clears', () => {
  const s = new StateDir(tmp());
  const rec: PendingRecord = {
    target: T2,
    previous: { number: 4, path: T1 },
    deadline: '2030-01-01T00:05:00Z',
    bootId: currentBootId(),
    releaseVersion: 2,
    rolloutId: null,
    startedAt: '2030-01-01T00:00:00Z',
    phase: 'switching',
    probes: [],
    healthyPassesRequired: 2,
  };
  writePending(s, rec);
  assert.equal(readPending(s), rec);
  clearPending(s);
  assert.is(readPending(s), undefined);
});

function fields(kind: AckFields['kind']): AckFields {
  return {
    kind,
    releaseVersion: 1,
    rolloutId: null,
    target: T1,
    current: T1,
    healthySince: null,
    probes: [],
    reason: null,
  };
}

test('ack journal: hash chain, signatures, reopen, torn tail cut', () => {
  const s = new StateDir(tmp());
  const key = newSigningKey('web-01');
  const j = new AckJournal(s, 'demo', 'web-01', key);
  const a1 = j.append(fields('started'), Date.parse('2030-01-01T00:00:00Z'));
  const a2 = j.append(fields('healthy'), Date.parse('2030-01-01T00:00:05Z'));
  assert.is(a1.signed.seq, 1);
  assert.is(a1.signed.prev, null);
  assert.is(a2.signed.prev, ackDigest(a1));
  verifyAckSignature(a2, 'web-01', b64(key.publicKey));
  // Crash mid-append: half a line at the end.
  appendFileSync(s.path(ACK_JOURNAL_FILE), '{"signed":{"type":"ack"');
  const j2 = new AckJournal(s, 'demo', 'web-01', key);
  assert.is(j2.lastSeq(), 2);
  assert.ok(readFileSync(s.path(ACK_JOURNAL_FILE), 'utf8').endsWith('\n'), 'torn tail cut');
  const a3 = j2.append(fields('heartbeat'), Date.parse('2030-01-01T00:01:00Z'));
  assert.is(a3.signed.seq, 3);
  assert.is(a3.signed.prev, ackDigest(a2));
  assert.equal(
    j2.after(1).map((a) => a.signed.seq),
    [2, 3],
  );
  assert.is(j2.all().length, 3);
});

test('ack journal: finds the last ack beyond the tail window', () => {
  const s = new StateDir(tmp());
  const key = newSigningKey('web-02');
  const j = new AckJournal(s, 'demo', 'web-02', key);
  const long = {
    ...fields('healthy'),
    probes: Array.from({ length: 32 }, (_, i) => ({
      name: `p${i}`,
      ok: true,
      detail: 'x'.repeat(250),
    })),
  };
  for (let i = 0; i < 12; i++) j.append(long, Date.parse('2030-01-01T00:00:00Z') + i * 1000);
  const j2 = new AckJournal(s, 'demo', 'web-02', key);
  assert.is(j2.lastSeq(), 12);
});

test.run();
