// Runs the agent's probes given as JSON in argv[2] and prints their results as JSON: lets a test run the
// real probe code inside another namespace (tests/agent/systemd-probe.test.ts, under a private systemd).
import { runProbe } from '../../agent/probes/index.ts';
import type { Probe } from '../../protocol/index.ts';

const probes = JSON.parse(process.argv[2] ?? '[]') as Probe[];
const results = [];
for (const probe of probes) results.push(await runProbe(probe));
process.stdout.write(JSON.stringify(results) + '\n');
