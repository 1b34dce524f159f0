// When a run that reads no wave bundles checks for lost acks (agent/ack-sync.ts lossCheckDue): never
// checked, another control plane box, unconfirmed acks in the journal, LOSS_CHECK_INTERVAL_MS since the
// last check, or a clock that went back. The record lives in a file of its own (ack-sync.json keeps
// the fields an older agent's strict schema reads), and an unreadable record only makes the check due.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ACK_SYNC_FILE,
  AckSync,
  LOSS_CHECK_FILE,
  LOSS_CHECK_INTERVAL_MS,
  PUBLISH_GRACE_MS,
} from '../../agent/ack-sync.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { NotFound, type HttpClient } from '../../agent/http-client.ts';
import { memoryLogger } from '../../agent/log.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { newSigningKey } from '../../protocol/keys.ts';

const T0 = Date.UTC(2026, 11, 1);

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'nf-loss-check-'));
  const state = new StateDir(dir);
  const journal = new AckJournal(state, 'lab', 'h1', newSigningKey('h1'));
  // Only currentUrl is read while no request is needed (nothing confirmed: no head to fetch).
  const client = { currentUrl: 'https://a.example/' } as unknown as HttpClient;
  const sync = new AckSync(state, journal, client, 'h1', memoryLogger('h1'));
  return { dir, state, journal, client, sync };
}

test('due when never checked; not due within the interval; due again at the interval', async () => {
  const { dir, sync } = setup();
  try {
    assert.is(sync.lossCheckDue(T0), 'no loss check recorded');
    await sync.detectLoss(T0);
    assert.is(sync.lossCheckDue(T0 + LOSS_CHECK_INTERVAL_MS - 1), null);
    assert.match(sync.lossCheckDue(T0 + LOSS_CHECK_INTERVAL_MS) ?? '', /last check was 600 s ago/);
    assert.match(sync.lossCheckDue(T0 - 1) ?? '', /clock went back/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('due on another control plane box, and with acks the endpoint has not confirmed', async () => {
  const { dir, journal, client, sync } = setup();
  try {
    await sync.detectLoss(T0);
    assert.is(sync.lossCheckDue(T0 + 1000), null);
    (client as unknown as { currentUrl: string }).currentUrl = 'https://b.example/';
    assert.match(sync.lossCheckDue(T0 + 1000) ?? '', /box changed/);
    (client as unknown as { currentUrl: string }).currentUrl = 'https://a.example/';
    journal.append(
      {
        kind: 'heartbeat',
        releaseVersion: 1,
        rolloutId: null,
        target: '/nix/store/00000000000000000000000000000000-x',
        current: '/nix/store/00000000000000000000000000000000-x',
        healthySince: null,
        probes: [],
        reason: null,
      },
      T0 + 1000,
    );
    assert.match(sync.lossCheckDue(T0 + 2000) ?? '', /journal holds acks up to seq 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the record is its own file, read leniently; ack-sync.json keeps only what an older agent reads', async () => {
  const { dir, state, sync } = setup();
  try {
    await sync.detectLoss(T0);
    const record = JSON.parse(readFileSync(state.path(LOSS_CHECK_FILE), 'utf8'));
    assert.equal(record, { at: T0, url: 'https://a.example/' });
    writeFileSync(state.path(LOSS_CHECK_FILE), '{"at": "garbage"');
    assert.is(sync.lossCheckDue(T0 + 1000), 'no loss check recorded', 'unreadable: due, no error');
    await sync.detectLoss(T0 + 1000);
    assert.is(sync.lossCheckDue(T0 + 2000), null, 'and rewritten by the next check');
    // ack-sync.json, when present, holds no loss-check field (its schema is strict in older agents).
    try {
      const s = JSON.parse(readFileSync(state.path(ACK_SYNC_FILE), 'utf8')) as object;
      assert.ok(Object.keys(s).every((k) => k === 'serverSeq' || k === 'missingBelow'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a head lagging an ack signed within the publish grace is inconclusive: not recorded as a check', async () => {
  const { dir, state, journal, client, sync } = setup();
  try {
    // Our ack seq 1 is confirmed, and the control plane publishes no head for us (yet, or lost).
    journal.append(
      {
        kind: 'heartbeat',
        releaseVersion: 1,
        rolloutId: null,
        target: '/nix/store/00000000000000000000000000000000-x',
        current: '/nix/store/00000000000000000000000000000000-x',
        healthySince: null,
        probes: [],
        reason: null,
      },
      T0,
    );
    writeFileSync(state.path(ACK_SYNC_FILE), JSON.stringify({ serverSeq: 1 }));
    (client as unknown as { get: (path: string) => Promise<Uint8Array> }).get = (path) =>
      Promise.reject(new NotFound(path));
    await sync.detectLoss(T0 + 1000);
    assert.is(
      sync.lossCheckDue(T0 + 1500),
      'no loss check recorded',
      'inside the grace: looks again',
    );
    await sync.detectLoss(T0 + PUBLISH_GRACE_MS + 1000);
    assert.is(sync.serverSeq, 0, 'past the grace: the loss is found');
    assert.match(sync.lossCheckDue(T0 + PUBLISH_GRACE_MS + 1500) ?? '', /journal holds acks/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
