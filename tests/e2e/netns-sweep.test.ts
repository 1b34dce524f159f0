// The namespace helper sweeps what a killed run left behind, and nothing else: a namespace of our form
// whose pid no longer runs is deleted; one of a live run, and one not of our form, are kept.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { requireNetns, sweepDeadRuns } from '../support/netns.ts';

const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' });
const exists = (ns: string) =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .some((l) => l.split(' ')[0] === ns);

/** A pid that ran and has exited (its child finished before spawnSync returned). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

test('a killed run is swept; a live run and foreign names are kept', () => {
  if (!requireNetns('namespace sweep')) return;
  const dead = deadPid();
  const names = {
    dead: `nf-${dead.toString(36)}_0-cp`,
    deadFailover: `nf-${dead.toString(36)}_1-fo-a`,
    live: `nf-${process.pid.toString(36)}_zz-cp`,
    foreign: `nf-fo-a-${dead}`,
  };
  try {
    for (const ns of Object.values(names)) ip('netns', 'add', ns);
    const swept = sweepDeadRuns();
    assert.ok(swept.includes(names.dead), `swept ${swept.join(', ')}`);
    assert.ok(swept.includes(names.deadFailover));
    assert.not.ok(exists(names.dead));
    assert.not.ok(exists(names.deadFailover));
    assert.ok(exists(names.live), 'the live run keeps its namespace');
    assert.ok(exists(names.foreign), 'a name not of our form is never touched');
  } finally {
    for (const ns of Object.values(names))
      try {
        ip('netns', 'del', ns);
      } catch {
        /* swept */
      }
  }
});

test.run();
