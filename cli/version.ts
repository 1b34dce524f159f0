import { readFileSync } from 'node:fs';
import type { Command } from './command.ts';

const command: Command = {
  name: 'version',
  summary: 'print the nixfleet version',
  help: 'Usage: nixfleet version',
  async run() {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    process.stdout.write(`nixfleet ${pkg.version}\n`);
    return 0;
  },
};
export default command;
