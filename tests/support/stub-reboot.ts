// What a reboot does to a test host (tests/support/nix-hosts.ts NixTestHost), in one place, and the
// stub reboot command built on it.
//
// bootDefaultEntry(dir, bootId): the machine comes back up. The kernel has a new boot id (the file the
// nix activator's `bootIdFile` names), and the system the bootloader's default entry names runs: the
// last `switch-to-configuration boot` in the host's switch.log becomes `current-system`, and its
// service is up with that system's health verdict (the line its switch script writes).
//
// Run as a script, it is the reboot command of a test host (`NixTestHost.rebootingCommand()`, the
// activator's `rebootCommand`), standing in for `systemctl reboot`. The agent runs it with execFile, so
// its parent is the agent process. It
//   1. appends `reboot` to reboot.log (one line per run of the reboot command),
//   2. "boots": bootDefaultEntry with the next boot id (`boot-<n+1>` after `boot-<n>`), and records the
//      boot in boots.log (`<old id> -> <new id> <system>`),
//   3. sends SIGTERM to the agent, as systemd's shutdown stops the agent's unit, and exits 0.
// The test's next `nixfleet agent --once` run (the harness's stand-in for the systemd timer, which
// starts the agent again after boot: OnBootSec) is the first run of the new boot. What it does not
// stand for: the machine's other units, the real kernel and bootloader (the "bootloader" is the last
// line of switch.log), and the order of shutdown and boot — the new boot id and running system are in
// place before the agent is stopped, which the agent cannot observe: it is blocked in the reboot
// command until the signal ends it.
import { appendFileSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const STUB_REBOOT_SCRIPT = fileURLToPath(import.meta.url);

/** The host's kernel boot id, as the activator reads it (`bootIdFile` = <dir>/boot_id). */
export function bootIdFile(dir: string): string {
  return join(dir, 'boot_id');
}

/** The system the bootloader's default entry names: the last `boot` in the host's switch.log. */
function defaultEntry(dir: string): string {
  let log = '';
  try {
    log = readFileSync(join(dir, 'switch.log'), 'utf8');
  } catch {
    /* no switch ran: no entry */
  }
  const booted = log
    .split('\n')
    .filter((l) => l.startsWith('boot '))
    .at(-1)
    ?.slice('boot '.length);
  if (!booted) throw new Error(`${dir}: reboot without a boot entry (no 'boot' in switch.log)`);
  return booted;
}

/** The host boots: new boot id, the default entry's system runs with its health. Returns that system. */
export function bootDefaultEntry(dir: string, bootId: string): string {
  const booted = defaultEntry(dir);
  const health = /^\s*echo (\w+) > "\$dir\/health"$/m.exec(
    readFileSync(join(booted, 'bin', 'switch-to-configuration'), 'utf8'),
  )?.[1];
  if (!health) throw new Error(`${booted}: its switch script writes no health verdict`);
  writeFileSync(bootIdFile(dir), `${bootId}\n`);
  rmSync(join(dir, 'current-system'), { force: true });
  symlinkSync(booted, join(dir, 'current-system'));
  writeFileSync(join(dir, 'health'), `${health}\n`);
  return booted;
}

/** `boot-<n+1>` after `boot-<n>`; any other id (or none) is followed by `boot-1`. */
export function nextBootId(current: string | null): string {
  const n = current === null ? null : /^boot-(\d+)$/.exec(current.trim())?.[1];
  return `boot-${n ? Number(n) + 1 : 1}`;
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The stub reboot command (see the top of this file). */
function main(): void {
  const dir = process.env['NIXFLEET_TEST_HOST_DIR'];
  if (!dir) throw new Error('stub reboot: NIXFLEET_TEST_HOST_DIR is not set');
  appendFileSync(join(dir, 'reboot.log'), 'reboot\n');
  const old = readOrNull(bootIdFile(dir));
  const next = nextBootId(old);
  const booted = bootDefaultEntry(dir, next);
  appendFileSync(join(dir, 'boots.log'), `${old ?? '-'} -> ${next} ${booted}\n`);
  process.kill(process.ppid, 'SIGTERM');
}

if (process.argv[1] === STUB_REBOOT_SCRIPT) main();
