// The control plane's CLI commands, run in process: exit codes, JSON output, refusals naming the file.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { cpSync } from '../../cli/cp.ts';
import { pkiInit, pkiIssueHost, pkiIssueOperator, pkiRevoke } from '../../cli/pki.ts';
import nginxConfig from '../../cli/nginx-config.ts';
import { UsageError, type Command } from '../../cli/command.ts';
import { envelopeBytes } from '../../protocol/envelope.ts';
import { requireTool } from '../support/skip.ts';
import { fixtureHosts, fixtureKeys, writeTree, tempDir, removeDir } from './tree-fixture.ts';
import { captureOutput } from '../support/cli.ts';

const test = suite('control-plane CLI');
let work: string;
test.before.each(() => {
  work = tempDir('cp-cli');
});
test.after.each(() => removeDir(work));

const run = (cmd: Command, argv: string[]) => captureOutput(() => cmd.run(argv));

test('pki: relative --out and --pki work from the current directory; a failed init leaves nothing behind', async () => {
  if (!requireTool('openssl', 'the fleet PKI')) return;
  const cwd = process.cwd();
  process.chdir(work);
  const path = process.env.PATH;
  try {
    // openssl runs inside the PKI directory: a relative path must not be applied twice.
    const init = await run(pkiInit, ['--out', 'pki']);
    assert.is(init.code, 0, init.err);
    const host = await run(pkiIssueHost, ['--pki', 'pki', '--host', 'web1', '--json']);
    assert.is(host.code, 0, host.err);
    assert.ok(existsSync(join(work, 'pki', 'hosts', 'web1.crt')));
    // No openssl on PATH: the command fails, and no half-made CA blocks the next run.
    process.env.PATH = join(work, 'empty-bin');
    const failed = await run(pkiInit, ['--out', 'pki2']);
    assert.is(failed.code, 1);
    assert.match(failed.err + failed.out, /openssl command is not installed/);
    process.env.PATH = path;
    assert.equal(
      readdirSync(work).filter((f) => f.includes('pki2')),
      [],
      'no pki2 and no staging directory left',
    );
    assert.is((await run(pkiInit, ['--out', 'pki2'])).code, 0, 'the retry succeeds');
  } finally {
    process.env.PATH = path;
    process.chdir(cwd);
  }
});

test('cp sync: 0 and a JSON summary when installed, 1 naming the file when tampered', async () => {
  const keys = fixtureKeys();
  const hosts = fixtureHosts({ web1: {} });
  writeFileSync(join(work, 'root.json'), envelopeBytes(keys.signedRoot));
  writeTree(join(work, 'v1'), { keys, hosts, version: 1, issuedOffsetSeconds: -100 });
  const ok = await run(cpSync, [
    '--from',
    join(work, 'v1'),
    '--tree',
    join(work, 'cp'),
    '--root',
    join(work, 'root.json'),
    '--json',
  ]);
  assert.is(ok.code, 0);
  assert.is(JSON.parse(ok.out).releaseVersion, 1);
  writeTree(join(work, 'v2'), { keys, hosts, version: 2 });
  const index = join(work, 'v2', 'releases/2/index.json');
  writeFileSync(index, readFileSync(index, 'utf8').replace('"source":null', '"source":"x"'));
  const bad = await run(cpSync, [
    '--from',
    join(work, 'v2'),
    '--tree',
    join(work, 'cp'),
    '--root',
    join(work, 'root.json'),
    '--json',
  ]);
  assert.is(bad.code, 1);
  const err = JSON.parse(bad.out).error;
  assert.is(err.file, 'releases/2/index.json');
  try {
    await run(cpSync, ['--from', join(work, 'v2'), '--tree', join(work, 'cp')]);
    assert.unreachable('accepted without --root');
  } catch (e) {
    assert.instance(e, UsageError);
  }
});

test('pki: init, issue-host, issue-operator, revoke; a second certificate for a name is refused', async () => {
  if (!requireTool('openssl', 'PKI')) return;
  const pki = join(work, 'pki');
  assert.is((await run(pkiInit, ['--out', pki])).code, 0);
  assert.ok(existsSync(join(pki, 'ca.crt')));
  assert.is((await run(pkiInit, ['--out', pki])).code, 1, 'refuses to overwrite the CA');
  const host = await run(pkiIssueHost, ['--pki', pki, '--host', 'web1', '--json']);
  assert.is(host.code, 0);
  const serial = JSON.parse(host.out).serial as string;
  assert.match(serial, /^[0-9A-F]+$/);
  assert.is((await run(pkiIssueHost, ['--pki', pki, '--host', 'web1'])).code, 1);
  assert.is((await run(pkiIssueHost, ['--pki', pki, '--host', 'Bad_Name'])).code, 1);
  assert.is((await run(pkiIssueOperator, ['--pki', pki, '--name', 'alice'])).code, 0);
  const rev = await run(pkiRevoke, [
    '--pki',
    pki,
    '--cert',
    join(pki, 'hosts', 'web1.crt'),
    '--json',
  ]);
  assert.is(rev.code, 0);
  assert.is(JSON.parse(rev.out).revoked, serial);
  assert.match(
    readFileSync(join(pki, 'revoked-serials.txt'), 'utf8'),
    new RegExp(`^${serial}$`, 'm'),
  );
  assert.is(
    (await run(pkiIssueHost, ['--pki', pki, '--host', 'web1'])).code,
    0,
    're-issue after revocation',
  );
});

test('nginx-config: renders a full config and creates the revocation maps; refuses a non-loopback upstream', async () => {
  if (!requireTool('openssl', 'PKI')) return;
  const pki = join(work, 'pki');
  await run(pkiInit, ['--out', pki]);
  const tree = join(work, 'cp');
  const r = await run(nginxConfig, [
    '--tree',
    tree,
    '--pki',
    pki,
    '--listen',
    '127.0.0.1:8443',
    '--ack-upstream',
    '127.0.0.1:8444',
    '--runtime-dir',
    join(work, 'rt'),
  ]);
  assert.is(r.code, 0);
  assert.match(r.out, /ssl_verify_client optional;/);
  assert.match(r.out, /ssl_crl /);
  assert.match(r.out, /proxy_set_header X-SSL-Client-S-DN \$ssl_client_s_dn;/);
  assert.ok(existsSync(join(tree, 'nginx', 'revoked-serials.map')));
  try {
    await run(nginxConfig, [
      '--tree',
      tree,
      '--pki',
      pki,
      '--listen',
      '127.0.0.1:8443',
      '--ack-upstream',
      '192.0.2.1:8444',
    ]);
    assert.unreachable('accepted a non-loopback upstream');
  } catch (e) {
    assert.instance(e, UsageError);
  }
});

test('nginx-config: the shared session cache by default (128m, named after the CA and CRL), tickets with --tls-session-cache off; a bad size is a usage error', async () => {
  if (!requireTool('openssl', 'PKI')) return;
  const pki = join(work, 'pki');
  await run(pkiInit, ['--out', pki]);
  const host = await run(pkiIssueHost, ['--pki', pki, '--host', 'web1']);
  assert.is(host.code, 0);
  const render = (...extra: string[]) =>
    run(nginxConfig, [
      '--tree',
      join(work, 'cp'),
      '--pki',
      pki,
      '--listen',
      '127.0.0.1:8443',
      '--ack-upstream',
      '127.0.0.1:8444',
      ...extra,
    ]);
  const tickets = await render('--tls-session-cache', 'off');
  assert.match(tickets.out, /ssl_session_tickets on;/);
  assert.match(tickets.out, /ssl_conf_command NumTickets 1;/);
  const zone = (out: string, size = '128m') =>
    new RegExp(`ssl_session_cache shared:(nixfleet_[0-9a-f]{12}):${size};`).exec(out)?.[1];
  const cached = await render();
  assert.match(cached.out, /ssl_session_tickets off;/);
  assert.match(cached.out, /ssl_conf_command NumTickets 1;/);
  assert.ok(zone(cached.out), cached.out);
  assert.is(zone((await render()).out), zone(cached.out), 'stable');
  assert.is(zone((await render('--tls-session-cache', '64m')).out, '64m'), zone(cached.out));
  // A revocation rewrites the CRL: the next rendering names a new (empty) cache.
  await run(pkiRevoke, ['--pki', pki, '--cert', join(pki, 'hosts', 'web1.crt')]);
  const after = zone((await render()).out);
  assert.ok(after && after !== zone(cached.out), `${after} after the CRL changed`);
  assert.match(nginxConfig.help, /--tls-session-cache SIZE \(default 128m/);
  for (const bad of ['lots', '10 m', '0m', 'OFF'])
    try {
      await render('--tls-session-cache', bad);
      assert.unreachable(`accepted ${bad}`);
    } catch (e) {
      assert.instance(e, UsageError);
      assert.match(
        (e as Error).message,
        /--tls-session-cache: expected a size such as 128m, or off/,
      );
    }
});

test('nginx-config --nginx-pid: reloads nginx (SIGHUP to the pid in the file) once --out is written; needs --out', async () => {
  if (!requireTool('openssl', 'PKI')) return;
  const pki = join(work, 'pki');
  await run(pkiInit, ['--out', pki]);
  const out = join(work, 'nginx.conf');
  const args = [
    ...['--tree', join(work, 'cp'), '--pki', pki, '--listen', '8443'],
    ...['--ack-upstream', '127.0.0.1:8444'],
  ];
  try {
    await run(nginxConfig, [...args, '--nginx-pid', join(work, 'nginx.pid')]);
    assert.unreachable('--nginx-pid without --out');
  } catch (e) {
    assert.instance(e, UsageError);
    assert.match((e as Error).message, /--nginx-pid .* give --out/);
  }
  // A stand-in for nginx's master: on SIGHUP it reports whether the config was already there.
  const master = spawn(
    process.execPath,
    [
      '-e',
      `process.on('SIGHUP', () => { process.stdout.write(String(require('fs').existsSync(${JSON.stringify(out)}))); process.exit(0); }); process.stdout.write('ready'); setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    let said = '';
    const exited = new Promise<void>((resolve) => master.once('exit', () => resolve()));
    await new Promise<void>((resolve) =>
      master.stdout.on('data', (d: Buffer) => {
        said += d.toString();
        if (said.startsWith('ready')) resolve();
      }),
    );
    writeFileSync(join(work, 'nginx.pid'), `${master.pid}\n`);
    const r = await run(nginxConfig, [
      ...args,
      '--out',
      out,
      '--nginx-pid',
      join(work, 'nginx.pid'),
    ]);
    assert.is(r.code, 0, r.err);
    await exited;
    assert.is(said, 'readytrue', 'SIGHUP after the config was written');
  } finally {
    if (master.exitCode === null) master.kill('SIGKILL');
  }
});

test.run();
