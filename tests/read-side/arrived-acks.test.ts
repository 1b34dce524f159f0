// Acks verified as they arrive (read-side/arrived-acks.ts), as a view server's stores consult them: a
// look after the intake takes the new acks in without their strict intake and signature check, and shows
// exactly what a look without any cache shows; a forged or tampered ack is not kept and is refused by the
// look as always; a host re-keyed by a new release is verified again; an arrived file keeps its identity
// only once its times lie the racy margin behind and its bytes are still the verified ones (not when
// rewritten, touched or grown past the size limit); what is kept stays bounded. Real published tree,
// real signed acks, the real store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { sha256Digest } from '../../protocol/canonical.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { join } from 'node:path';
import { ArrivedAcks } from '../../read-side/arrived-acks.ts';
import { RACY_MS } from '../../read-side/ack-file-memo.ts';
import { loadFleetState, readPinnedRoot } from '../../read-side/load.ts';
import { renderStatus, statusReport } from '../../read-side/status.ts';
import { openVerifiedAckStore, type VerifiedAckStore } from '../../read-side/verified-cache.ts';
import {
  MIN,
  NOW,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
  rekeyingRelease,
  rewriteSignatureInPlace,
  waiting,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

/** `nixfleet status` as the CLI runs it (through `store`, saved), or with no cache (`store` null). */
async function look(fx: Fixture, store: VerifiedAckStore | null) {
  const state = await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), {
    now: NOW,
    manifests: [],
    ackLogs: [],
    ...(store === null
      ? {}
      : { ackCache: store.cache, ackFiles: () => store.verifiedAckFiles, memo: store.documents }),
  });
  store?.save();
  const report = statusReport(state, {});
  return {
    view: `${renderStatus(report)}\n${JSON.stringify(report)}`,
    rejected: state.acks.rejected.map((r) => `${r.source} ${r.code}`),
  };
}

/** A fixture mid-rollout, a store that has looked at it once (so the intake knows the release's keys). */
async function served(label: string) {
  const fx = publishedFixture(label);
  const [a] = fx.wave('ch-0', 0);
  const [b, c] = fx.wave('ch-0', 1);
  postAcks(fx, a!, lifecycle(NOW - 12 * MIN, NOW - MIN));
  postAcks(fx, b!, waiting(NOW - 10 * MIN, NOW - 2 * MIN));
  const cacheDir = join(fx.dir, 'cache');
  mkdirSync(cacheDir, { mode: 0o700 });
  const arrived = new ArrivedAcks();
  const store = openVerifiedAckStore(cacheDir, 'status', Date.now(), arrived);
  await look(fx, store);
  const next = async () => {
    store.renew(Date.now());
    const seen = await look(fx, store);
    return { ...seen, counts: store.ackCounts! };
  };
  return { fx, arrived, store, next, hosts: [a!, b!, c!] };
}

const fileOf = (fx: Fixture, host: string) => join(fx.tree, 'acks', 'hosts', `${host}.json`);

/** The look shows what a look without cache shows, and refuses each of `hosts`' files. */
async function refusedAsWithoutCache(
  fx: Fixture,
  after: { view: string; rejected: string[] },
  hosts: string[],
): Promise<void> {
  const oneShot = await look(fx, null);
  assert.is(after.view, oneShot.view);
  assert.equal(after.rejected, oneShot.rejected);
  for (const h of hosts)
    assert.ok(
      after.rejected.some((r) => r.startsWith(`acks/hosts/${h}.json `)),
      `${h}'s ack refused: ${after.rejected.join(', ')}`,
    );
}

test('acks verified as they arrive: the next look takes them in without a signature check and shows what a look without cache shows', async () => {
  const { fx, arrived, next, hosts } = await served('arrived');
  const [, b, c] = hosts;
  postAcks(fx, b!, [{ kind: 'started', at: NOW - MIN }]);
  postAcks(fx, c!, waiting(NOW - 10 * MIN, NOW - 3 * MIN));
  assert.equal(arrived.takeIn([fileOf(fx, b!), fileOf(fx, c!)]), {
    verified: 2,
    refused: 0,
    skipped: 0,
  });
  assert.is(arrived.size, 2);
  const after = await next();
  assert.is(after.counts.verified, 0, 'no signature checked');
  assert.is(after.counts.arrived, 2);
  const oneShot = await look(fx, null);
  assert.is(after.view, oneShot.view);
  assert.equal(after.rejected, oneShot.rejected);
  // Taken in again (the same bytes): nothing more to do.
  assert.equal(arrived.takeIn([fileOf(fx, b!)]), { verified: 0, refused: 0, skipped: 1 });
});

test('a forged or tampered ack that arrives is not kept: the look refuses it as a look without cache does', async () => {
  const { fx, arrived, next, hosts } = await served('arrived-forged');
  const [a, b, c] = hosts;
  // c's ack signed with b's key (a forged ack), b's file then rewritten in place (a bad signature).
  postAcks(fx, c!, [{ kind: 'started', at: NOW - MIN }], fx.hostKeys[b!]);
  // (A whole-second modification time first, which the rewrite can put back.)
  const second = Math.floor((Date.now() - MIN) / 1000);
  utimesSync(fileOf(fx, b!), second, second);
  rewriteSignatureInPlace(fileOf(fx, b!));
  // An ack of a host the release does not name, and a file gone before the intake.
  assert.equal(
    arrived.takeIn([
      fileOf(fx, c!),
      fileOf(fx, b!),
      fileOf(fx, 'no-such-host'),
      fileOf(fx, `${a!}-gone`),
    ]),
    { verified: 0, refused: 2, skipped: 2 },
  );
  assert.is(arrived.size, 0);
  const after = await next();
  assert.is(after.counts.arrived, 0);
  await refusedAsWithoutCache(fx, after, [b!, c!]);
});

test('a host re-keyed by a new release after its ack arrived: the ack is verified again by the look, under the new key', async () => {
  const { fx, arrived, next, hosts } = await served('arrived-rekeyed');
  const [, b] = hosts;
  postAcks(fx, b!, [{ kind: 'started', at: NOW - MIN }]);
  assert.is(arrived.takeIn([fileOf(fx, b!)]).verified, 1);
  rekeyingRelease(fx, b!);
  const after = await next();
  assert.is(after.counts.arrived, 0, 'not taken as verified under the old key');
  const oneShot = await look(fx, null);
  assert.is(after.view, oneShot.view);
  assert.equal(after.rejected, oneShot.rejected);
  assert.ok(after.rejected.some((r) => r.startsWith(`acks/hosts/${b!}.json `)));
});

/** A ripening as it would start once the files just written lie the racy margin behind. */
const afterRacyMargin = () => Date.now() + RACY_MS + 50;

test('arrived files ripen: a look recalls them by identity (neither read nor verified) and shows what a look without cache shows', async () => {
  const { fx, arrived, next, hosts } = await served('arrived-ripe');
  const [, b, c] = hosts;
  postAcks(fx, b!, [{ kind: 'started', at: NOW - MIN }]);
  postAcks(fx, c!, waiting(NOW - 10 * MIN, NOW - 3 * MIN));
  assert.is(arrived.takeIn([fileOf(fx, b!), fileOf(fx, c!)]).verified, 2);
  // Not before the racy margin: the files' times are too new for their identity to be kept.
  assert.is(arrived.ripen(Date.now()), 0);
  assert.is(arrived.fileAt(fileOf(fx, b!)), undefined);
  assert.ok(arrived.nextRipeAt! > Date.now());
  assert.is(arrived.ripen(afterRacyMargin()), 2);
  assert.is(arrived.nextRipeAt, null);
  assert.is(arrived.fileAt(fileOf(fx, b!))!.digest, sha256Digest(readFileSync(fileOf(fx, b!))));
  const after = await next();
  // Recalled: not even taken from the arrived pairs (which a read file is), and nothing verified.
  assert.is(after.counts.arrived, 0);
  assert.is(after.counts.verified, 0);
  const oneShot = await look(fx, null);
  assert.is(after.view, oneShot.view);
  assert.equal(after.rejected, oneShot.rejected);
});

test('an arrived file rewritten in place keeps no identity (before its ripening or after it): the look reads and refuses it', async () => {
  const { fx, arrived, next, hosts } = await served('arrived-ripe-rewritten');
  const [, b, c] = hosts;
  postAcks(fx, b!, [{ kind: 'started', at: NOW - MIN }]);
  postAcks(fx, c!, [{ kind: 'started', at: NOW - MIN }]);
  // (Whole-second modification times, which a rewrite can put back.)
  const second = Math.floor(Date.now() / 1000) - 60;
  for (const h of [b!, c!]) utimesSync(fileOf(fx, h), second, second);
  assert.is(arrived.takeIn([fileOf(fx, b!), fileOf(fx, c!)]).verified, 2);
  // b: rewritten before its ripening (same inode, size and modification time; other bytes).
  rewriteSignatureInPlace(fileOf(fx, b!));
  assert.is(arrived.ripen(afterRacyMargin()), 1, 'only c');
  assert.is(arrived.fileAt(fileOf(fx, b!)), undefined);
  // c: rewritten after it.
  rewriteSignatureInPlace(fileOf(fx, c!));
  const after = await next();
  await refusedAsWithoutCache(fx, after, [b!, c!]);
});

test('an arrived file that can no longer be read as an ack when it ripens (grown past the size limit) keeps no identity, and the ripening goes on', async () => {
  const { fx, arrived, next, hosts } = await served('arrived-ripe-too-large');
  const [, b, c] = hosts;
  postAcks(fx, b!, [{ kind: 'started', at: NOW - MIN }]);
  postAcks(fx, c!, [{ kind: 'started', at: NOW - MIN }]);
  assert.is(arrived.takeIn([fileOf(fx, b!), fileOf(fx, c!)]).verified, 2);
  writeFileSync(fileOf(fx, b!), Buffer.alloc(LIMITS.ack + 1, 0x20));
  assert.is(arrived.ripen(afterRacyMargin()), 1, 'only c');
  assert.is(arrived.fileAt(fileOf(fx, b!)), undefined);
  const after = await next();
  const oneShot = await look(fx, null);
  assert.is(after.view, oneShot.view);
  assert.equal(after.rejected, oneShot.rejected);
  assert.ok(after.rejected.some((r) => r.startsWith(`acks/hosts/${b!}.json TooLarge`)));
});

test('an arrived file touched after its intake ripens only once the touch lies the racy margin behind', async () => {
  const { fx, arrived, hosts } = await served('arrived-ripe-touched');
  const [, b] = hosts;
  postAcks(fx, b!, [{ kind: 'started', at: NOW - MIN }]);
  const newest = (st: { mtimeMs: number; ctimeMs: number }) => Math.max(st.mtimeMs, st.ctimeMs);
  const read = newest(statSync(fileOf(fx, b!)));
  assert.is(arrived.takeIn([fileOf(fx, b!)]).verified, 1);
  await new Promise((done) => setTimeout(done, 100));
  // Touched (its change time moves; the bytes stay).
  const st = statSync(fileOf(fx, b!));
  utimesSync(fileOf(fx, b!), st.atime, st.mtime);
  const touched = newest(statSync(fileOf(fx, b!)));
  assert.ok(touched > read + 50, `${touched} after ${read}`);
  // Ripe by the time it was read, not by its touch: its identity waits.
  assert.is(arrived.ripen(read + RACY_MS + 25), 0);
  assert.ok(arrived.nextRipeAt! > touched + RACY_MS, 'the next ripening moved past the touch');
  assert.is(arrived.ripen(touched + RACY_MS + 25), 1);
  assert.ok(arrived.fileAt(fileOf(fx, b!)) !== undefined);
});

test('what arrived is bounded: one ack per file (a newer one replaces it), dropped once older than the views kept', async () => {
  const { fx, arrived, hosts } = await served('arrived-bounded');
  const [, b] = hosts;
  const digestOf = (host: string) => sha256Digest(readFileSync(fileOf(fx, host)));
  postAcks(fx, b!, [{ kind: 'started', at: NOW - 2 * MIN }]);
  arrived.takeIn([fileOf(fx, b!)], 1000);
  const older = digestOf(b!);
  assert.ok(arrived.hostKeyOf(older) !== undefined);
  postAcks(fx, b!, [{ kind: 'started', at: NOW - MIN }]);
  arrived.takeIn([fileOf(fx, b!)], 2000);
  assert.is(arrived.size, 1);
  assert.is(arrived.hostKeyOf(older), undefined, 'the older ack of the file is dropped');
  assert.ok(arrived.hostKeyOf(digestOf(b!)) !== undefined);
  assert.is(arrived.forgetBefore(2000), 0);
  assert.is(arrived.forgetBefore(2001), 1);
  assert.is(arrived.size, 0);
});

test.run();
