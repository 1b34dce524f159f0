// Damaged local state never blocks a rollback, and is reported as what it is. Each case puts a host in
// the state a real activation leaves (profile switched to NEW, pending record written) and damages a
// local file; the next run, with no control plane at all, must still restore the recorded generation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appendFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runAgentOnce } from '../../agent/agent.ts';
import { AckJournal, ACK_JOURNAL_FILE } from '../../agent/ack-journal.ts';
import { AGENT_STATE_FILE, updateAgentState } from '../../agent/agent-state.ts';
import { SIMULATED_GENERATIONS_FILE } from '../../agent/activators/simulated.ts';
import { memoryLogger } from '../../agent/log.ts';
import {
  PENDING_COPY_FILE,
  PENDING_FILE,
  readPendingCopies,
  writePending,
  type PendingRecord,
} from '../../agent/pending.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { TRUST_STATE_FILE } from '../../agent/cycle.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { NEW, OLD, labFleet, makeLab } from './lab-fleet.ts';
import type { Lab } from '../support/lab.ts';

const CLI = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
const labs: Lab[] = [];
test.after(async () => {
  for (const l of labs) await l.close();
});

/** A host of a fresh lab, switched to NEW with a pending record whose deadline is `deadlineInMs` away. */
function switchedHost(deadlineInMs: number) {
  const lab = makeLab(['h1']);
  labs.push(lab);
  const config = lab.agentConfig('h1', {
    controlPlaneUrl: 'https://127.0.0.1:1/',
    retries: 0,
    requestTimeoutMs: 500,
  });
  const state = new StateDir(config.stateDir);
  const now = Date.now();
  const journal = new AckJournal(state, 'lab', 'h1', lab.host('h1').key);
  const p: PendingRecord = {
    target: NEW,
    previous: { number: 1, path: OLD },
    deadline: isoTime(now + deadlineInMs),
    bootId: null,
    releaseVersion: 1,
    rolloutId: null,
    startedAt: isoTime(now - 1000),
    probes: [],
    healthyPassesRequired: 1,
    phase: 'switched',
  };
  journal.append(
    {
      kind: 'started',
      releaseVersion: 1,
      rolloutId: null,
      target: NEW,
      current: OLD,
      healthySince: null,
      probes: [],
      reason: null,
    },
    now - 1000,
  );
  updateAgentState(state, { beforeActivation: { number: 1, path: OLD } });
  writePending(state, p);
  writeFileSync(
    state.path(SIMULATED_GENERATIONS_FILE),
    JSON.stringify({
      current: 2,
      generations: [
        { number: 1, path: OLD },
        { number: 2, path: NEW },
      ],
    }),
  );
  journal.append(
    {
      kind: 'activated',
      releaseVersion: 1,
      rolloutId: null,
      target: NEW,
      current: NEW,
      healthySince: null,
      probes: [],
      reason: null,
    },
    now - 500,
  );
  return { lab, config, state, p };
}

function running(state: StateDir): string {
  const g = JSON.parse(readFileSync(state.path(SIMULATED_GENERATIONS_FILE), 'utf8')) as {
    current: number;
    generations: { number: number; path: string }[];
  };
  return g.generations.find((x) => x.number === g.current)!.path;
}

const later = () => Date.now() + 60_000;

test('garbage appended to the ack journal inside the window: rolled back at the deadline, journal repaired, the chain goes on', async () => {
  const { config, state } = switchedHost(5_000);
  appendFileSync(state.path(ACK_JOURNAL_FILE), '{"this is":"not an ack"}\n');
  const log = memoryLogger('h1');
  const outcome = await runAgentOnce(config, { log, now: later });
  assert.is.not(outcome.kind, 'refused');
  assert.is(running(state), OLD, 'the recorded generation is restored');
  assert.equal(readPendingCopies(state), { kind: 'none' }, 'rollback finished: pending cleared');
  const acks = new AckJournal(
    state,
    'lab',
    'h1',
    (await import('../../protocol/keys.ts')).newSigningKey('x'),
  ).all();
  assert.equal(
    acks.map((a) => a.signed.kind),
    ['started', 'activated', 'rolled-back'],
    'garbage cut, rolled-back ack chained after the last real ack',
  );
  assert.ok(
    readdirSync(config.stateDir).some((f) => f.startsWith(`${ACK_JOURNAL_FILE}.damaged-`)),
    'the damaged journal is kept for inspection',
  );
  assert.ok(log.records.some((r) => r.event === 'ack-journal-damaged'));
});

test('an unreadable journal (damage in the middle) never blocks the rollback; the run exits as local state, naming the file', async () => {
  const { config, state } = switchedHost(60_000);
  const lines = readFileSync(state.path(ACK_JOURNAL_FILE), 'utf8').split('\n');
  writeFileSync(state.path(ACK_JOURNAL_FILE), [lines[0], 'garbage', lines[1], ''].join('\n'));
  const log = memoryLogger('h1');
  // Inside the window: without a readable journal it can never be confirmed -> undone now.
  const outcome = await runAgentOnce(config, { log, now: Date.now });
  assert.is(running(state), OLD);
  assert.is(outcome.kind, 'local-state');
  if (outcome.kind === 'local-state')
    assert.ok(outcome.file.startsWith(state.path(ACK_JOURNAL_FILE)), outcome.file);
});

for (const [name, damage] of [
  ['truncated pending.json', (s: StateDir) => truncateSync(s.path(PENDING_FILE), 40)],
  [
    'garbage in pending.json',
    (s: StateDir) => writeFileSync(s.path(PENDING_FILE), '\u0000\u0000garbage'),
  ],
  ['pending.json missing', (s: StateDir) => rmSync(s.path(PENDING_FILE))],
  ['the copy truncated', (s: StateDir) => truncateSync(s.path(PENDING_COPY_FILE), 10)],
] as const) {
  test(`pending record survives: ${name} -> still rolled back at the deadline, record repaired`, async () => {
    const { config, state } = switchedHost(5_000);
    damage(state);
    const outcome = await runAgentOnce(config, { log: memoryLogger('h1'), now: later });
    assert.is.not(outcome.kind, 'local-state');
    assert.is(running(state), OLD);
    assert.equal(readPendingCopies(state), { kind: 'none' });
  });
}

test('both copies unreadable: fail-safe restores the generation recorded before the activation, damaged files set aside', async () => {
  const { config, state } = switchedHost(600_000);
  truncateSync(state.path(PENDING_FILE), 30);
  writeFileSync(state.path(PENDING_COPY_FILE), 'garbage');
  const log = memoryLogger('h1');
  await runAgentOnce(config, { log, now: Date.now });
  assert.is(running(state), OLD, 'an unknown deadline counts as passed');
  assert.not.ok(existsSync(state.path(PENDING_FILE)) || existsSync(state.path(PENDING_COPY_FILE)));
  assert.is(readdirSync(config.stateDir).filter((f) => f.includes('.damaged-')).length, 2);
  assert.ok(log.records.some((r) => r.event === 'pending-record-unreadable'));
});

test('both copies unreadable and no generation recorded: nothing is guessed, local-state outcome naming the file', async () => {
  const { config, state } = switchedHost(600_000);
  writeFileSync(state.path(PENDING_FILE), 'x');
  writeFileSync(state.path(PENDING_COPY_FILE), 'y');
  rmSync(state.path(AGENT_STATE_FILE));
  const outcome = await runAgentOnce(config, { log: memoryLogger('h1'), now: Date.now });
  assert.is(outcome.kind, 'local-state');
  if (outcome.kind === 'local-state') assert.match(outcome.reason, /pending\.json.*by hand/);
  assert.is(running(state), NEW);
});

test('the binary: a corrupt trust-state.json exits 4 naming the file, not "refusing the served tree" (exit 1)', async () => {
  const lab = makeLab(['h1']);
  labs.push(lab);
  lab.publish(labFleet(lab, { c: { hosts: { h1: OLD }, waves: [{ soakSeconds: 1 }] } }));
  await lab.startControlPlane();
  const config = lab.agentConfig('h1');
  const state = new StateDir(config.stateDir);
  writeFileSync(state.path(TRUST_STATE_FILE), '{"truncated');
  // Asynchronous: the control plane answers from this process.
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>(
    (resolve) => {
      execFile(
        process.execPath,
        [CLI, 'agent', '--config', lab.host('h1').configFile, '--once'],
        { encoding: 'utf8', timeout: 60_000 },
        (e, stdout, stderr) =>
          resolve({ status: e ? ((e as { code?: number }).code ?? null) : 0, stdout, stderr }),
      );
    },
  );
  assert.is(r.status, 4, r.stdout + r.stderr);
  assert.ok(r.stderr.includes(state.path(TRUST_STATE_FILE)), r.stderr);
  assert.not.match(r.stdout + r.stderr, /refus/);
});

test.run();
