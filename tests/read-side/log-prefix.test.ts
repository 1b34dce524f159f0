// A warm `trace` reads the ack log's records it verified before without checking them again: the
// operator cache remembers each segment's verified prefix (its length and SHA-256, under a trust
// fingerprint; read-side/acks.ts LogPrefixMemo), sealed with the cache directory's key. Checked here:
// the warm history equals a full read, only new records are checked, and a changed, truncated or
// tampered log, or a prefixes file edited by hand, falls back to verifying every record.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { AckCache, LogPrefixMemo } from '../../read-side/acks.ts';
import { loadAckHistory, traceScope } from '../../read-side/trace.ts';
import { loadVerifiedRelease } from '../../read-side/release.ts';
import {
  MIN,
  NOW,
  ROOT,
  chainedRollout,
  cleanupTempDirs,
  postAcks,
  tamperLogRecord,
  traceHost,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

/** ch-0 (gates ch-1) completes; ch-1 wave 0 [e] soaks; ch-1 wave 1 polls. */
function rollout(): Fixture {
  return chainedRollout('log-prefix', { first: 20, ch0: 12, ch1: 5, polling: 5 });
}

// Key order differs between strict intake and JSON.parse (the same ack): compare canonical forms.
const sortedJson = (xs: unknown[]) => xs.map((x) => canonicalString(x)).sort();

test('a warm read takes the remembered prefix whole and checks only the records after it; the history equals a full read', async () => {
  const fx = rollout();
  const [e] = fx.wave('ch-1', 0);
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const scope = traceScope(release, { host: e! });
  const read = (memo?: LogPrefixMemo) =>
    loadAckHistory(fx.tree, release, fx.logFile, new AckCache(), [], scope.hosts, memo);

  const cold = new LogPrefixMemo();
  const full = read(cold);
  assert.is(cold.hits, 0);
  assert.equal(
    cold.used().map((p) => [p.file, p.bytes]),
    [[fx.logFile, readFileSync(fx.logFile).length]],
    'the whole log, verified, is proposed and kept',
  );
  assert.is(full.rejected.length, 0);

  const warmMemo = new LogPrefixMemo(cold.used());
  const warm = read(warmMemo);
  assert.is(warmMemo.hits, 1);
  assert.equal(sortedJson(warm.acks), sortedJson(full.acks));
  assert.equal(sortedJson(warm.acks), sortedJson(read().acks), 'equals a read without any memo');
  assert.not.ok(warmMemo.changed, 'nothing new: the file is not rewritten');

  // New records after the prefix: the prefix is taken, the new ones verified and added to it.
  postAcks(fx, e!, [{ kind: 'heartbeat', at: NOW - 2 * MIN, healthySince: NOW - 17 * MIN + MIN }]);
  const grown = new LogPrefixMemo(warmMemo.used());
  const after = read(grown);
  assert.is(grown.hits, 1);
  assert.equal(sortedJson(after.acks), sortedJson(read().acks));
  assert.is(after.acks.length, full.acks.length + 1);
  assert.equal(
    grown.used().map((p) => p.bytes),
    [readFileSync(fx.logFile).length],
  );

  // Another trust (a fingerprint over other hosts' keys): the prefix is not taken.
  const other = traceScope(release, { host: fx.wave('ch-0', 0)[0]! });
  const elsewhere = new LogPrefixMemo(grown.used());
  loadAckHistory(fx.tree, release, fx.logFile, new AckCache(), [], other.hosts, elsewhere);
  assert.is(elsewhere.hits, 0, 'a scope of other hosts is another fingerprint');
});

test('with a warm cache, a tampered log record of the host itself or of a gating peer is still refused; a truncated log is read in full', async () => {
  const fx = rollout();
  const [a] = fx.wave('ch-0', 0);
  const [e] = fx.wave('ch-1', 0);
  const cache = join(fx.dir, 'cache');
  const cold = await traceHost(fx, e!, null);
  assert.equal(await traceHost(fx, e!, cache), cold);
  assert.equal(await traceHost(fx, e!, cache), cold, 'warm: the same trace');

  const la = tamperLogRecord(fx, a!); // a gates e (channel edge ch-0 -> ch-1)
  const le = tamperLogRecord(fx, e!); // e itself
  const tampered = await traceHost(fx, e!, cache);
  assert.equal(
    tampered.history.rejected.map((x) => `${x.source} ${x.code}`).sort(),
    [`${fx.logFile}:${la} BadSignature`, `${fx.logFile}:${le} BadSignature`].sort(),
  );
  assert.equal(tampered, await traceHost(fx, e!, null), 'as a run without any cache');
  assert.equal(
    await traceHost(fx, e!, cache),
    tampered,
    'and again: a refused record is never remembered',
  );

  // Cut to its first half (at a record boundary): shorter than the remembered prefix, read in full.
  const bytes = readFileSync(fx.logFile);
  const cut = bytes.indexOf(0x0a, bytes.length >> 1) + 1;
  truncateSync(fx.logFile, cut);
  assert.equal(await traceHost(fx, e!, cache), await traceHost(fx, e!, null));
});

test('a prefixes file edited by hand to vouch for a rewritten log is not believed; only one sealed with the directory key is', async () => {
  const fx = rollout();
  const [e] = fx.wave('ch-1', 0);
  const cache = join(fx.dir, 'cache');
  await traceHost(fx, e!, cache);
  const file = join(cache, 'trace.ch-1.log-prefixes');
  const original = readFileSync(file, 'utf8');
  const line = tamperLogRecord(fx, e!);
  // The edit: the remembered prefix now names the rewritten log's length and digest.
  const log = readFileSync(fx.logFile);
  const digest = `sha256:${createHash('sha256').update(log).digest('hex')}`;
  const [header, entry] = original.split('\n') as [string, string];
  const fields = entry.split(' ');
  const edited = `${header}\n${[log.length, digest, ...fields.slice(2)].join(' ')}\n`;
  const key = Buffer.from(readFileSync(join(cache, 'cache-key'), 'latin1').trim(), 'hex');
  const refusedWith = async (text: string, label: string) => {
    writeFileSync(file, text, { mode: 0o600 });
    const r = await traceHost(fx, e!, cache);
    assert.equal(
      r.history.rejected.map((x) => `${x.source} ${x.code}`),
      [`${fx.logFile}:${line} BadSignature`],
      label,
    );
  };
  await refusedWith(`${edited}${original.slice(original.indexOf('mac '))}`, 'the old MAC kept');
  await refusedWith(edited, 'no MAC');
  await refusedWith(`${edited}mac ${sha256Digest(edited).slice(7)}\n`, 'a plain digest as MAC');
  // The premise (what the key protects): sealed with the directory's key, the file is believed.
  writeFileSync(file, `${edited}mac ${createHmac('sha256', key).update(edited).digest('hex')}\n`);
  const believed = await traceHost(fx, e!, cache);
  assert.equal(believed.history.rejected, [], 'a sealed prefix is taken as verified');
});

test.run();
