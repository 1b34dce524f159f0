// `nixfleet validate`: check a fleet and show how it resolves, without signing anything.
import { EXIT_OK, EXIT_REFUSED, output, parseCommandArgs, type Command } from './command.ts';
import { validateFleet, describeResolution, formatResolution } from '../publisher/index.ts';
import { loadFleetArg, reportPublisherError } from './publish.ts';

const command: Command = {
  name: 'validate',
  summary: 'validate a fleet JSON and print its resolved waves, or every violation',
  help: `Usage: nixfleet validate (FLEET.json | --flake REF) [--json]

Checks the fleet (schema, references, cycles, duplicate keys and machine ids, freshness vs signing
interval, wave coverage, budgets) and lists EVERY violation. When valid, prints each channel's
resolved waves (hosts in their stable order), budgets, rollout ids and warnings.

Options:
  --flake REF   evaluate the fleet with \`nix eval --json REF\`
  --json        print {ok, errors, warnings} or the resolved view as JSON

Exit: 0 valid, 1 invalid, 2 usage or I/O.`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      { flake: { type: 'string' }, json: { type: 'boolean', default: false } },
      true,
    );
    try {
      const { fleet, source } = await loadFleetArg(positionals, values.flake);
      const r = validateFleet(fleet);
      if (!r.ok) {
        if (values.json)
          output(true, { ok: false, errors: r.errors, warnings: r.warnings }, () => '');
        else {
          process.stderr.write(
            `${source}: the fleet is invalid (${r.errors.length} violation${r.errors.length === 1 ? '' : 's'}):\n`,
          );
          for (const e of r.errors) process.stderr.write(`  - ${e}\n`);
          for (const w of r.warnings) process.stderr.write(`  warning: ${w}\n`);
        }
        return EXIT_REFUSED;
      }
      const view = describeResolution(r);
      output(values.json, { ok: true, ...view }, () => formatResolution(view));
      return EXIT_OK;
    } catch (e) {
      return reportPublisherError('validate', e, values.json);
    }
  },
};
export default command;
