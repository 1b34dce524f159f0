// Start-up cost of the shipped `nixfleet` binary (compiled JavaScript in dist/, scripts/build.mjs),
// side by side with its floor, `node -e 0`, in the same run, as whole processes: wall time, CPU
// (user + system) and peak RSS from GNU time. Target (issue 10): within 2x of the floor.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/nixfleet.js', import.meta.url));
const GNU_TIME = '/usr/bin/time';
const RUNS = 15;

interface Cost {
  wallMs: number;
  cpuMs: number;
  rssMb: number;
}

/** One whole process under GNU time: `%e %U %S %M` = wall s, user s, system s, peak RSS KB. */
function once(args: string[]): Cost {
  const r = spawnSync(GNU_TIME, ['-f', '%e %U %S %M', process.execPath, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(`node ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  const out = r.stderr;
  const [wall, user, sys, rssKb] = out.trim().split('\n').at(-1)!.split(' ').map(Number) as [
    number,
    number,
    number,
    number,
  ];
  return { wallMs: wall * 1000, cpuMs: (user + sys) * 1000, rssMb: rssKb / 1024 };
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

function series(args: string[]): Cost {
  const runs = Array.from({ length: RUNS }, () => once(args));
  return {
    wallMs: median(runs.map((r) => r.wallMs)),
    cpuMs: median(runs.map((r) => r.cpuMs)),
    rssMb: median(runs.map((r) => r.rssMb)),
  };
}

export default async function bench(): Promise<void> {
  if (!existsSync(GNU_TIME)) {
    console.log(`skipped: ${GNU_TIME} (Debian package "time") is not installed`);
    return;
  }
  // Interleaved would be fairer on a busy machine; medians of 15 in one run are close enough here.
  const floor = series(['-e', '0']);
  const rows: [string, Cost, string][] = [
    ['node -e 0 (floor)', floor, ''],
    ['nixfleet version', series([BIN, 'version']), '<= 2x'],
    ['nixfleet agent --help', series([BIN, 'agent', '--help']), ''],
  ];
  console.log(
    `process start-up, median of ${RUNS} runs each, same run (GNU time: wall, user+sys CPU, peak RSS)\n`,
  );
  console.log(
    '| command                  | wall ms | CPU ms | RSS MB | CPU ratio to floor | target |',
  );
  console.log(
    '|--------------------------|---------|--------|--------|--------------------|--------|',
  );
  for (const [name, c, target] of rows) {
    console.log(
      `| ${name.padEnd(24)} | ${c.wallMs.toFixed(0).padStart(7)} | ${c.cpuMs.toFixed(0).padStart(6)} | ${c.rssMb.toFixed(0).padStart(6)} | ${(c.cpuMs / Math.max(floor.cpuMs, 1)).toFixed(2).padStart(18)} | ${target.padEnd(6)} |`,
    );
  }
}
