// `nixfleet views serve` under a real systemd (a private one, PID 1 of its own PID and mount namespace:
// ../shared TOOLING.md "systemd"), as the NixOS module runs it (a service with Restart=on-failure: the
// module's is a user service, the restart rule is the same): a server of another build than the command
// serves no view; once its own build is replaced on disk (an upgrade in place) it stops with 75 when such
// a client asks, systemd starts it again, and the server now of the command's build serves it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { viewServerSocket } from '../../cli/operator-paths.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { builtCopy, checkoutBuild, fakeBuild } from '../support/built-copy.ts';
import {
  canRunPrivateSystemd,
  startPrivateSystemd,
  until,
  type PrivateSystemd,
} from '../support/private-systemd.ts';
import {
  MIN,
  NOW,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
} from '../read-side/fixture.ts';

const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
/** The module's RestartSec (nix/modules/control-plane.nix). */
const RESTART_SEC = 5;
const UNIT = 'nixfleet-views.service';

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
  if (!canRunPrivateSystemd()) return;
  const fx = publishedFixture('views-systemd');
  const [a] = fx.wave('ch-0', 0);
  postAcks(fx, a!, lifecycle(NOW - 12 * MIN, NOW - MIN));
  const cache = join(fx.dir, 'cache');
  mkdirSync(cache, { mode: 0o700 });
  const copy = builtCopy(join(fx.dir, 'nixfleet'), fakeBuild('0'));
  const log = join(fx.dir, 'server.log');
  const units = {
    [UNIT]: `[Unit]
DefaultDependencies=no
[Service]
ExecStart=${process.execPath} ${copy.bin} views serve --tree ${fx.tree} --cache-dir ${cache} --refresh 0
Restart=on-failure
RestartSec=${RESTART_SEC}s
StandardError=append:${log}
`,
    'views-test.target': `[Unit]\nDefaultDependencies=no\nWants=${UNIT}\n`,
  };
  const args = ['status', '--tree', fx.tree, '--root', fx.rootFile, '--cache-dir', cache];
  args.push('--now', isoTime(NOW));
  const oneShot = nixfleet([...args, '--no-cache']);
  const socket = viewServerSocket(cache, fx.tree);
  const servedLines = () =>
    (existsSync(log) ? readFileSync(log, 'utf8') : '')
      .split('\n')
      .filter((l) => / -> exit \d+ in \d+ ms$/.test(l));
  let sd: PrivateSystemd | undefined;
  try {
    sd = await startPrivateSystemd(join(fx.dir, 'systemd'), units, 'views-test.target');
    const systemd = sd;
    const show = (prop: string) => systemd.show(UNIT, prop);
    await until(
      'the server to start',
      () => existsSync(socket) && existsSync(log) && /serving /.test(readFileSync(log, 'utf8')),
    );
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
    await sd?.stop();
  }
});

test.after(cleanupTempDirs);

test.run();
