// `nixfleet views serve` under a real systemd (a private one, PID 1 of its own PID and mount namespace:
// ../shared TOOLING.md "systemd"), as the NixOS module runs it (a service with Restart=on-failure: the
// module's is a user service, the restart rule is the same): a server of another build than the command
// serves no view; once its own build is replaced on disk (an upgrade in place) it stops with 75 when such
// a client asks, systemd starts it again, and the server now of the command's build serves it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { viewServerSocket } from '../../cli/operator-paths.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { builtCopy, checkoutBuild, fakeBuild } from '../support/built-copy.ts';
import { requireTool } from '../support/skip.ts';
import {
  MIN,
  NOW,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
} from '../read-side/fixture.ts';

const SYSTEMD = '/lib/systemd/systemd';
const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
/** The module's RestartSec (nix/modules/control-plane.nix). */
const RESTART_SEC = 5;

// PID 1 of the namespace: /run on a tmpfs of its own, the units copied in, then systemd itself.
const BOOT = `#!/bin/sh
mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && cp "$1"/* /run/systemd/system/ || exit 1
export container=nixfleet-test
exec ${SYSTEMD} --system --unit=views-test.target --log-target=null --show-status=no
`;

function inside(pid: number, argv: string[]): { status: number | null; stdout: string } {
  const r = spawnSync('nsenter', ['-t', String(pid), '-m', '-p', '--', ...argv], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout };
}

async function until(what: string, ok: () => boolean, boundMs = 120_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function nixfleet(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env };
  for (const k of ['NIXFLEET_CODE_CACHE', 'CACHE_DIRECTORY', 'NIXFLEET_DEBUG']) delete env[k];
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env,
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('under systemd, a server replaced on disk stops (75), is started again, and serves the new build', async () => {
  if (!requireTool('unshare', 'private systemd')) return;
  if (!requireTool('nsenter', 'private systemd')) return;
  if (!requireTool(SYSTEMD, 'private systemd')) return;
  const fx = publishedFixture('views-systemd');
  const [a] = fx.wave('ch-0', 0);
  postAcks(fx, a!, lifecycle(NOW - 12 * MIN, NOW - MIN));
  const cache = join(fx.dir, 'cache');
  mkdirSync(cache, { mode: 0o700 });
  const copy = builtCopy(join(fx.dir, 'nixfleet'), fakeBuild('0'));
  const log = join(fx.dir, 'server.log');
  const units = join(fx.dir, 'units');
  mkdirSync(units);
  writeFileSync(
    join(units, 'nixfleet-views.service'),
    `[Unit]
DefaultDependencies=no
[Service]
ExecStart=${process.execPath} ${copy.bin} views serve --tree ${fx.tree} --cache-dir ${cache} --refresh 0
Restart=on-failure
RestartSec=${RESTART_SEC}s
StandardError=append:${log}
`,
  );
  writeFileSync(
    join(units, 'views-test.target'),
    '[Unit]\nDefaultDependencies=no\nWants=nixfleet-views.service\n',
  );
  writeFileSync(join(fx.dir, 'boot.sh'), BOOT);
  chmodSync(join(fx.dir, 'boot.sh'), 0o755);
  const args = ['status', '--tree', fx.tree, '--root', fx.rootFile, '--cache-dir', cache];
  args.push('--now', isoTime(NOW));
  const oneShot = nixfleet([...args, '--no-cache']);
  let unshare: ChildProcess | undefined;
  let systemdPid = 0;
  const socket = viewServerSocket(cache, fx.tree);
  const servedLines = () =>
    (existsSync(log) ? readFileSync(log, 'utf8') : '')
      .split('\n')
      .filter((l) => / -> exit \d+ in \d+ ms$/.test(l));
  const show = (prop: string) =>
    inside(systemdPid, [
      'systemctl',
      'show',
      '-p',
      prop,
      '--value',
      'nixfleet-views.service',
    ]).stdout.trim();
  try {
    unshare = spawn(
      'unshare',
      ['--pid', '--fork', '--kill-child=SIGKILL', '--mount', '--uts', '--mount-proc'].concat([
        '--propagation',
        'private',
        join(fx.dir, 'boot.sh'),
        units,
      ]),
      { stdio: 'ignore' },
    );
    assert.ok(unshare.pid);
    await until('systemd and the server to start', () => {
      const children = readFileSync(`/proc/${unshare!.pid}/task/${unshare!.pid}/children`, 'utf8');
      systemdPid = Number(children.trim().split(/\s+/)[0] ?? 0);
      return systemdPid > 0 && existsSync(socket) && /serving /.test(readFileSync(log, 'utf8'));
    });
    const firstPid = show('MainPID');

    // The server runs another build: the command looks by itself, says so, and the server lives on.
    const refused = nixfleet(args);
    assert.is(refused.stdout, oneShot.stdout);
    assert.match(refused.stderr, /runs another build of nixfleet \(000000000000\)/);
    assert.equal(servedLines(), []);
    assert.is(show('ActiveState'), 'active');
    assert.is(show('MainPID'), firstPid);

    // Upgraded in place to this checkout's build: the next such client makes it stop, systemd
    // starts it again, and the new server (this checkout's build) serves the command.
    copy.setBuild(checkoutBuild());
    const last = nixfleet(args);
    assert.is(last.stdout, oneShot.stdout);
    assert.match(last.stderr, /its own was replaced on disk .*so it stops/);
    await until(
      'the server to be started again',
      () => show('NRestarts') === '1' && show('ActiveState') === 'active' && existsSync(socket),
    );
    assert.is.not(show('MainPID'), firstPid);
    await until(
      'the new server to listen',
      () => readFileSync(log, 'utf8').split('serving ').length === 3,
    );
    const served = nixfleet(args);
    assert.is(served.stdout, oneShot.stdout);
    assert.is(served.stderr, '', "no note: the server is of the command's build");
    assert.is(servedLines().length, 1, 'the view was served');
  } finally {
    // SIGRTMIN+14 is systemd's "power off now" (SIGTERM would only make it re-execute).
    if (systemdPid > 0) spawnSync('kill', ['-s', 'RTMIN+14', String(systemdPid)]);
    if (unshare?.pid && unshare.exitCode === null) {
      const exited = new Promise((r) => unshare!.once('exit', r));
      const force = setTimeout(() => unshare!.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(force);
    }
  }
});

test.after(cleanupTempDirs);

test.run();
