// `nixfleet demo` (= `npm run demo`): the whole loop on one machine, no nginx and no Nix needed.
import { runDemo } from '../demo/index.ts';
import { EXIT_OK, EXIT_REFUSED, output, parseCommandArgs, type Command } from './command.ts';

const HELP = `
Usage: nixfleet demo [--dir DIR] [--json]

Creates keys, a trust root, a fleet CA with one client certificate per host and a 12-host fleet
(channels canary -> main joined by a channel edge; canary then staged waves; a disruption budget of 3
hosts in flight), publishes a signed release, starts the embedded mTLS control plane and runs every
host's agent (simulated activator, own state directory, own certificate). The rollout is shown wave by
wave; one host is injected to come up unhealthy, is rolled back by the magic rollback and quarantined.
Needs openssl (for the PKI). Finishes in well under a minute and leaves no process behind.

  --dir DIR   where to keep every file (default ./demo-output; emptied first)
  --json      print the final summary as JSON

Exit codes: 0 the demo ran as expected, 1 it did not (see the summary), 2 usage or I/O error.
`;

const command: Command = {
  name: 'demo',
  summary: 'run a 12-host rollout end to end on this machine (under a minute)',
  help: HELP,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      dir: { type: 'string', default: 'demo-output' },
      json: { type: 'boolean', default: false },
    });
    const print = values.json ? () => {} : (line: string) => process.stdout.write(line + '\n');
    const s = await runDemo({ dir: values.dir, print });
    output(values.json, s, () =>
      [
        '',
        s.ok
          ? `Rollout finished in ${s.seconds}s.`
          : `The demo did not end as expected after ${s.seconds}s.`,
        `  release ${s.releaseVersion}; channels: ${s.channels.map((c) => `${c.channel} ${c.state}`).join(', ')}`,
        `  converged (${s.converged.length}): ${s.converged.join(', ')}`,
        ...s.rolledBack.map(
          (r) => `  rolled back + quarantined until ${r.quarantinedUntil}: ${r.host} (${r.reason})`,
        ),
        '',
        'Files:',
        ...Object.entries(s.files).map(([k, v]) => `  ${k.padEnd(10)} ${v}`),
        '',
        `Look around: nixfleet verify ${s.files.tree} --root ${s.files.trustRoot}`,
        `             nixfleet agent quarantine list --config ${s.files.hosts}/${s.failingHost}/agent.json`,
        `             nixfleet site build --tree ${s.files.tree} --root ${s.files.trustRoot} --out ${s.dir}/site   (then open ${s.dir}/site/index.html)`,
      ].join('\n'),
    );
    return s.ok ? EXIT_OK : EXIT_REFUSED;
  },
};
export default command;
