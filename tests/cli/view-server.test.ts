// `nixfleet views serve` and the client in bin/nixfleet.js, as an operator runs them: a server process on
// a real published tree with real signed acks, and `nixfleet status` / `nixfleet trace` processes that ask
// it. A served view must be byte for byte the one-shot look's (the same command, the client's instant,
// working directory and options), including after new and tampered acks, and a view the server must not
// answer (another tree, --no-cache, an untrusted socket) is looked at by the client itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { builtCopy, fakeBuild } from '../support/built-copy.ts';
import { RACY_MS } from '../../read-side/ack-file-memo.ts';
import { connect, createServer, type Socket } from 'node:net';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ACCEPTED_LINE,
  NotAccepted,
  askViewServer,
  exchange,
  parseReply,
  servedReplyLength,
  viewRequestOf,
} from '../../cli/view-client.ts';
import { SOURCE_BUILD, buildIdOf, viewServerSocket } from '../../cli/operator-paths.ts';
import { LookQueue, startViewServer } from '../../cli/view-server.ts';
import { BURST_FILES } from '../../cli/ack-intake.ts';
import type { VerifierPool } from '../../protocol/verify/batch-pool.ts';
import { installedVerifierPool } from '../../protocol/verify/batch-verify.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import {
  MIN,
  NOW,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
  rekeyingRelease,
  rewriteSignatureInPlace,
  waiting,
  type Fixture,
} from '../read-side/fixture.ts';

const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
/** The build of dist/ (what BIN runs); a server started in this process runs SOURCE_BUILD. */
const DIST_BUILD = buildIdOf(new URL('../../dist/main.js', import.meta.url).href);
const NOW_ISO = isoTime(NOW);

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['NIXFLEET_CODE_CACHE', 'CACHE_DIRECTORY', 'NIXFLEET_DEBUG', 'XDG_CACHE_HOME'])
    delete env[k];
  return env;
}

/**
 * `nixfleet ARGS` as its own process. Asynchronous, so that the test's event loop keeps reading the
 * server's log meanwhile.
 */
function nixfleet(
  args: string[],
  cwd?: string,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const p = spawn(process.execPath, [BIN, ...args], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(cwd === undefined ? {} : { cwd }),
    });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    p.on('close', (code) => done({ code, out, err }));
  });
}

interface Server {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the first log line (from index `from` on) matching `re`; fails after 120 s or at exit. */
  waitFor(re: RegExp, from?: number): Promise<string>;
  /** Log lines of requests served. */
  served(): string[];
  /**
   * Waits for the log line of the n-th request served. The log is one ordered stream, so once it is
   * there every earlier request's line is too: counting then tells whether a look in between was served.
   */
  servedCount(n: number): Promise<number>;
}
const servers: ChildProcess[] = [];

async function startServer(
  tree: string,
  cacheDir: string,
  extra: string[] = [],
  bin = BIN,
): Promise<Server> {
  const proc = spawn(
    process.execPath,
    [bin, 'views', 'serve', '--tree', tree, '--cache-dir', cacheDir, ...extra],
    { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  servers.push(proc);
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  let buffered = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
    for (const l of listeners) l();
  });
  proc.on('exit', () => {
    for (const l of listeners) l();
  });
  const waitFor = (re: RegExp, from = 0) =>
    new Promise<string>((done, fail) => {
      const check = () => {
        const hit = lines.slice(from).find((l) => re.test(l));
        if (hit !== undefined) return finish(() => done(hit));
        if (proc.exitCode !== null || proc.signalCode !== null)
          return finish(() => fail(new Error(`server exited; log:\n${lines.join('\n')}`)));
      };
      const timer = setTimeout(
        () => finish(() => fail(new Error(`no ${re} in 120 s; log:\n${lines.join('\n')}`))),
        120_000,
      );
      const finish = (f: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        f();
      };
      listeners.add(check);
      check();
    });
  const served = () =>
    lines.filter((l) => / -> exit \d+ in \d+ ms$/.test(l) && !/refreshed /.test(l));
  const server: Server = {
    proc,
    lines,
    waitFor,
    served,
    async servedCount(n) {
      let from = 0;
      while (served().length < n) {
        await waitFor(/ -> exit \d+ in \d+ ms$/, from);
        from = lines.length;
      }
      return served().length;
    },
  };
  await waitFor(/serving /);
  return server;
}

test.after.each(async () => {
  for (const p of servers.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((done) => p.once('exit', done));
      p.kill('SIGKILL');
      await gone;
    }
  }
  cleanupTempDirs();
});

/** A mid-rollout fixture: ch-0 wave 0 soaked, wave 1 under way, ch-1 waiting. */
function rollout(): { fx: Fixture; cache: string; hosts: string[] } {
  const fx = publishedFixture('views');
  const [a] = fx.wave('ch-0', 0);
  const [b, c] = fx.wave('ch-0', 1);
  const [e] = fx.wave('ch-1', 0);
  postAcks(fx, a!, lifecycle(NOW - 12 * MIN, NOW - MIN));
  postAcks(fx, b!, [...waiting(NOW - 10 * MIN, NOW - 5 * MIN), { kind: 'started', at: NOW - MIN }]);
  postAcks(fx, c!, waiting(NOW - 10 * MIN, NOW - 2 * MIN));
  postAcks(fx, e!, waiting(NOW - 10 * MIN, NOW - MIN));
  const cache = join(fx.dir, 'cache');
  mkdirSync(cache, { mode: 0o700 });
  return { fx, cache, hosts: [a!, b!, c!, e!] };
}

const viewArgs = (fx: Fixture, cache: string) => [
  '--tree',
  fx.tree,
  '--root',
  fx.rootFile,
  '--cache-dir',
  cache,
  '--now',
  NOW_ISO,
];

/**
 * The view served and the one-shot look's (--no-cache: never served). Served means the server logged one
 * more request; with the next request's line in, exactly one (the sentinel rule of servedCount).
 */
async function servedAndOneShot(server: Server, args: string[], cwd?: string) {
  const before = server.served().length;
  const served = await nixfleet(args, cwd);
  assert.is(await server.servedCount(before + 1), before + 1, `served: ${args.join(' ')}`);
  const oneShot = await nixfleet([...args, '--no-cache'], cwd);
  return { served, oneShot };
}

function assertSame(r: Awaited<ReturnType<typeof servedAndOneShot>>, what: string): void {
  assert.is(r.served.code, r.oneShot.code, `${what}: exit code`);
  assert.is(r.served.out, r.oneShot.out, `${what}: stdout`);
  assert.is(r.served.err, r.oneShot.err, `${what}: stderr`);
}

test('a served status or trace is the one-shot look, byte for byte, for every kind of view', async () => {
  const { fx, cache, hosts } = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '0']);
  const base = viewArgs(fx, cache);
  const views: [string, string[]][] = [
    ['fleet status', ['status', ...base]],
    ['fleet status --json', ['status', ...base, '--json']],
    ['status --host', ['status', ...base, '--host', hosts[1]!]],
    ['status --host of the gated channel', ['status', ...base, '--host', hosts[3]!, '--json']],
    ['status --problems', ['status', ...base, '--problems']],
    ['status --channel', ['status', ...base, '--channel', 'ch-1']],
    ['trace --host', ['trace', ...base, '--acks-log', fx.logFile, '--host', hosts[1]!]],
    [
      'trace --channel --json',
      ['trace', ...base, '--acks-log', fx.logFile, '--channel', 'ch-0', '--json'],
    ],
    ['an unknown host (exit 2)', ['status', ...base, '--host', 'no-such-host']],
  ];
  for (const [what, args] of views) {
    // Twice: the first look fills the server's stores, the second is answered from them.
    for (let i = 0; i < 2; i++) assertSame(await servedAndOneShot(server, args), `${what} (${i})`);
  }
  const s = await servedAndOneShot(server, ['status', ...base]);
  assert.is(s.served.code, 0);
  assert.match(s.served.out, hosts[0]!);
});

test('new acks, a latest-ack file tampered in place and a tree that no longer verifies: served as a one-shot look sees them', async () => {
  const { fx, cache, hosts } = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '0']);
  const args = ['status', ...viewArgs(fx, cache), '--json'];
  // b's latest-ack file gets a whole-second modification time (so that the rewrite below can put it
  // back), and both its times become older than the racy window: the looks below remember it by identity.
  const bFile = join(fx.tree, 'acks/hosts', `${hosts[1]}.json`);
  const second = Math.floor((Date.now() - MIN) / 1000);
  utimesSync(bFile, second, second);
  await new Promise((done) => setTimeout(done, RACY_MS + 500));
  assertSame(await servedAndOneShot(server, args), 'before');
  // c goes on: started, activated, healthy.
  postAcks(fx, hosts[2]!, [
    { kind: 'started', at: NOW - 40_000 },
    { kind: 'activated', at: NOW - 30_000 },
    { kind: 'healthy', at: NOW - 20_000, healthySince: NOW - 20_000 },
  ]);
  const after = await servedAndOneShot(server, args);
  assertSame(after, 'after new acks');
  const phaseOf = (out: string, host: string) =>
    (JSON.parse(out) as { hosts: { host: string; phase: string }[] }).hosts.find(
      (h) => h.host === host,
    )!.phase;
  assert.is.not(phaseOf(after.served.out, hosts[2]!), 'pending', 'the new acks count');
  // b's latest-ack file, already verified and remembered by the server, rewritten in place.
  rewriteSignatureInPlace(bFile);
  const tampered = await servedAndOneShot(server, args);
  assertSame(tampered, 'after a tampered file');
  const rejected = (
    JSON.parse(tampered.served.out) as { acks: { rejected: { source: string; code: string }[] } }
  ).acks.rejected;
  assert.ok(
    rejected.some((r) => r.source === `acks/hosts/${hosts[1]}.json` && r.code === 'BadSignature'),
    `the tampered ack is refused: ${JSON.stringify(rejected)}`,
  );
  // A plan changed under the server: the tree no longer verifies, the view is refused (exit 1).
  const [version] = readdirSync(join(fx.tree, 'releases'));
  const planFile = join(fx.tree, 'releases', version!, 'channels', 'ch-1.json');
  utimesSync(planFile, second, second);
  rewriteSignatureInPlace(planFile);
  const refused = await servedAndOneShot(server, args);
  assertSame(refused, 'after a plan changed');
  assert.is(refused.served.code, 1, refused.served.out + refused.served.err);
});

/** The server's count of the last look's acks ("the look's acks: ..." before its request's line). */
function lastLookAcks(server: Server): { verified: number; arrived: number } {
  const line = server.lines.findLast((l) => /the look's acks: /.test(l))!;
  const m = /(\d+) verified by it, (\d+) verified as they arrived/.exec(line)!;
  return { verified: Number(m[1]), arrived: Number(m[2]) };
}

test('acks that arrive while the server is idle are verified before a request asks; forged, tampered or re-keyed ones are refused as a one-shot look refuses them', async () => {
  const { fx, cache, hosts } = rollout();
  const [a, b, c, e] = hosts;
  const server = await startServer(fx.tree, cache, ['--refresh', '0']);
  const args = ['status', ...viewArgs(fx, cache), '--json'];
  const rejectedOf = (out: string) =>
    (JSON.parse(out) as { acks: { rejected: { source: string }[] } }).acks.rejected.map(
      (r) => r.source,
    );
  // A first look: the server now knows the release's host keys.
  assertSame(await servedAndOneShot(server, args), 'first');
  // c goes on while no one asks: its new latest ack is verified by the intake, and the look after
  // checks no signature of it.
  let mark = server.lines.length;
  postAcks(fx, c!, [
    { kind: 'started', at: NOW - 40_000 },
    { kind: 'activated', at: NOW - 30_000 },
  ]);
  await server.waitFor(/took in 1 arrived ack file\(s\) in \d+ ms: 1 verified, 0 refused/, mark);
  assertSame(await servedAndOneShot(server, args), 'after an ack arrived');
  assert.equal(lastLookAcks(server), { verified: 0, arrived: 1 });
  // e's ack signed with a's key (forged), then b's file rewritten in place (a bad signature).
  mark = server.lines.length;
  postAcks(fx, e!, [{ kind: 'started', at: NOW - 40_000 }], fx.hostKeys[a!]);
  await server.waitFor(/: 0 verified, 1 refused/, mark);
  const bFile = join(fx.tree, 'acks/hosts', `${b}.json`);
  const second = Math.floor((Date.now() - MIN) / 1000);
  utimesSync(bFile, second, second);
  mark = server.lines.length;
  rewriteSignatureInPlace(bFile);
  await server.waitFor(/: 0 verified, 1 refused/, mark);
  const forged = await servedAndOneShot(server, args);
  assertSame(forged, 'after a forged and a tampered ack');
  for (const h of [b!, e!])
    assert.ok(rejectedOf(forged.served.out).includes(`acks/hosts/${h}.json`));
  assert.equal(lastLookAcks(server), { verified: 0, arrived: 0 });
  // c's next ack arrives and is verified under its key; then a new release re-keys c.
  mark = server.lines.length;
  postAcks(fx, c!, [{ kind: 'started', at: NOW - 20_000 }]);
  await server.waitFor(/: 1 verified, 0 refused/, mark);
  rekeyingRelease(fx, c!);
  const rekeyed = await servedAndOneShot(server, args);
  assertSame(rekeyed, 'after a new release re-keyed a host');
  assert.ok(rejectedOf(rekeyed.served.out).includes(`acks/hosts/${c}.json`));
  assert.is(lastLookAcks(server).arrived, 0, 'not taken as verified under the old key');
});

test("relative paths are the client's: a view asked from another directory is served and equal", async () => {
  const { fx, cache } = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '0']);
  const cwd = join(fx.dir, 'elsewhere');
  mkdirSync(cwd);
  const rel = (p: string) => relative(cwd, p);
  const args = [
    'status',
    '--tree',
    rel(fx.tree),
    '--root',
    rel(fx.rootFile),
    '--cache-dir',
    rel(cache),
    '--now',
    NOW_ISO,
  ];
  assertSame(await servedAndOneShot(server, args, cwd), 'relative paths');
  const missingRoot = [...args.slice(0, 4), 'no-such-root.json', ...args.slice(5)];
  const missing = await servedAndOneShot(server, missingRoot, cwd);
  assertSame(missing, 'a missing --root, named as given');
  assert.is(missing.served.code, 2);
  assert.match(missing.served.err, 'no-such-root.json');
});

test('views a server must not answer are looked at by the client itself: another tree, --no-cache, an untrusted socket or directory', async () => {
  const { fx, cache } = rollout();
  const other = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '0']);
  const mine = ['status', ...viewArgs(fx, cache)];
  const expected = (await nixfleet([...mine, '--no-cache'])).out;
  // Another tree with the same cache directory: another socket name, no server.
  const theirs = await nixfleet(['status', ...viewArgs(other.fx, cache)]);
  assert.is(theirs.code, 0, theirs.err);
  assert.is(
    theirs.out,
    (await nixfleet(['status', ...viewArgs(other.fx, cache), '--no-cache'])).out,
  );
  // A socket others may write to, then a cache directory others may write to: not asked.
  const socket = viewServerSocket(cache, fx.tree);
  chmodSync(socket, 0o666);
  assert.is((await nixfleet(mine)).out, expected, 'a socket writable by others: looked at alone');
  chmodSync(socket, 0o600);
  // Another user's socket (as root, which CI runs as, the test can make one): not asked.
  if (process.getuid!() === 0) {
    chownSync(socket, 65534, 65534);
    assert.is((await nixfleet(mine)).out, expected, "another user's socket: looked at alone");
    chownSync(socket, 0, 0);
  }
  chmodSync(cache, 0o777);
  assert.is(
    (await nixfleet(mine)).out,
    expected,
    'a directory writable by others: looked at alone',
  );
  chmodSync(cache, 0o700);
  assert.is((await nixfleet(mine)).out, expected);
  // The sentinel: this look was served, and with its log line in, no earlier one was.
  assert.is(await server.servedCount(1), 1, 'only the look with both private again was served');
});

test("one server per tree; a killed server's socket is taken over, and until then clients look themselves", async () => {
  const { fx, cache } = rollout();
  const first = await startServer(fx.tree, cache, ['--refresh', '0']);
  const second = await nixfleet(['views', 'serve', '--tree', fx.tree, '--cache-dir', cache]);
  assert.is(second.code, 2);
  assert.match(second.err, 'a view server already serves');
  const gone = new Promise((done) => first.proc.once('exit', done));
  first.proc.kill('SIGKILL');
  await gone;
  const socket = viewServerSocket(cache, fx.tree);
  assert.ok(existsSync(socket), 'kill -9 leaves the socket behind');
  const args = ['status', ...viewArgs(fx, cache)];
  const alone = await nixfleet(args);
  assert.is(alone.code, 0, alone.err);
  assert.is(alone.out, (await nixfleet([...args, '--no-cache'])).out);
  const next = await startServer(fx.tree, cache, ['--refresh', '0']);
  assert.is((await nixfleet(args)).out, alone.out);
  assert.is(await next.servedCount(1), 1);
  // SIGTERM: the server stops and removes its socket.
  const stopped = new Promise<number | null>((done) =>
    next.proc.once('exit', (code) => done(code)),
  );
  next.proc.kill('SIGTERM');
  assert.is(await stopped, 0);
  assert.not.ok(existsSync(socket), 'the socket is removed at SIGTERM');
});

/** Sends raw bytes to the socket and returns the whole reply. */
function rawExchange(socket: string, bytes: Buffer | string): Promise<Buffer> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    const conn = connect(socket, () => conn.end(bytes));
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('error', fail);
    conn.on('close', () => done(Buffer.concat(chunks)));
  });
}

test('malformed and oversized requests are refused by name, and the server keeps serving', async () => {
  const { fx, cache } = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '0']);
  const socket = viewServerSocket(cache, fx.tree);
  const refusalOf = async (bytes: Buffer | string) => {
    const raw = await rawExchange(socket, bytes);
    const r = parseReply(raw);
    assert.type(r, 'object', `a reply: ${String(r)}`);
    const header = (r as Exclude<typeof r, string>).header;
    assert.is(header.served, false);
    const reason = (header as { reason: string }).reason;
    // Only a request the server took in (and whose look then failed) was told so first.
    assert.is(raw.toString().startsWith(ACCEPTED_LINE), /the look failed/.test(reason), reason);
    return reason;
  };
  assert.match(await refusalOf('not json\n'), 'not JSON');
  assert.match(
    await refusalOf(
      JSON.stringify({
        v: 3,
        build: DIST_BUILD,
        argv: ['status'],
        cwd: 'relative',
        now: 1,
        cacheDir: cache,
      }),
    ),
    'cwd',
  );
  // An older client's request (its reply would have had no accepted line).
  assert.match(
    await refusalOf(JSON.stringify({ v: 2, argv: ['status'], cwd: '/', now: 1, cacheDir: cache })),
    'v',
  );
  assert.match(
    await refusalOf(
      JSON.stringify({
        v: 3,
        build: DIST_BUILD,
        argv: ['status'],
        cwd: '/',
        now: 1,
        cacheDir: cache,
        extra: 1,
      }),
    ),
    'extra',
  );
  assert.match(
    await refusalOf(
      JSON.stringify({
        v: 3,
        build: DIST_BUILD,
        argv: ['publish', '--tree', fx.tree],
        cwd: '/',
        now: 1,
        cacheDir: cache,
      }),
    ),
    'not an operator view',
  );
  assert.match(
    await refusalOf(
      JSON.stringify({
        v: 3,
        build: DIST_BUILD,
        argv: ['status', '--tree', fx.tree, '--help'],
        cwd: '/',
        now: 1,
        cacheDir: cache,
      }),
    ),
    '--help is not a look',
  );
  assert.match(await refusalOf(Buffer.alloc(70 * 1024, 0x20)), '64 KiB');
  // A well-formed request from a directory that no longer exists: the look fails, the server lives on.
  assert.match(
    await refusalOf(
      JSON.stringify({
        v: 3,
        build: DIST_BUILD,
        argv: ['status', '--tree', fx.tree, '--root', fx.rootFile],
        cwd: join(fx.dir, 'gone'),
        now: NOW,
        cacheDir: cache,
      }),
    ),
    /the look failed: .*ENOENT/,
  );
  const args = ['status', ...viewArgs(fx, cache)];
  assert.is((await nixfleet(args)).out, (await nixfleet([...args, '--no-cache'])).out);
  assert.is(await server.servedCount(1), 1);
});

/** `p`, or a failure once `ms` have passed (a client that waits on fails the test instead of hanging it). */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const late = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`still waiting after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

test('a stopped server does not hang its clients: with no answer in the accept timeout, the client looks itself', async () => {
  const { fx, cache } = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '0']);
  const socket = viewServerSocket(cache, fx.tree);
  const args = ['status', ...viewArgs(fx, cache)];
  server.proc.kill('SIGSTOP');
  try {
    // Connecting succeeds (the kernel queues it); only the missing accepted line tells.
    const request = viewRequestOf(args, fx.dir, cleanEnv(), NOW)!.request;
    const failed = await within(
      60_000,
      exchange(socket, `${JSON.stringify(request)}\n`, 500).then(
        () => null,
        (e: unknown) => e,
      ),
    );
    assert.instance(failed, NotAccepted);
    // askViewServer, as bin/nixfleet.js calls it: no exit code, so the command looks itself.
    const said: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((t: string) => said.push(t) > 0) as typeof write;
    try {
      assert.is(await within(60_000, askViewServer(args, cleanEnv(), 500)), undefined);
    } finally {
      process.stderr.write = write;
    }
    assert.match(said.join(''), /the view server at .*: no answer in 0.5 s; looking without it/);
  } finally {
    server.proc.kill('SIGCONT');
  }
  // Resumed, it answers the queued connections' requests and the next one as before.
  const served = await nixfleet(args);
  assert.is(served.out, (await nixfleet([...args, '--no-cache'])).out);
  assert.ok((await server.servedCount(1)) >= 1);
});

test('the client takes a whole reply without waiting for the server to close (a server writes its stores after the reply)', async () => {
  const { fx, cache } = rollout();
  const socket = viewServerSocket(cache, fx.tree);
  const args = ['status', ...viewArgs(fx, cache)];
  const body = 'the view, as the server printed it\n';
  const header = JSON.stringify({ served: true, exit: 3, stdout: body.length, stderr: 0 });
  const conns: Socket[] = [];
  // A server that answers in two parts and then keeps the connection open.
  const fake = createServer({ allowHalfOpen: true }, (conn) => {
    conns.push(conn);
    conn.once('data', () => {
      conn.write(ACCEPTED_LINE);
      conn.write(`${header}\n${body.slice(0, 9)}`);
      setTimeout(() => conn.write(body.slice(9)), 300);
    });
  });
  await new Promise<void>((listening) => fake.listen(socket, listening));
  chmodSync(socket, 0o600);
  const printed: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((t: string) => printed.push(t) > 0) as typeof write;
  try {
    assert.is(await within(60_000, askViewServer(args, cleanEnv(), 60_000)), 3);
  } finally {
    process.stdout.write = write;
    for (const c of conns) c.destroy();
    fake.close();
  }
  assert.is(printed.join(''), body, 'the whole reply, not its first part');
});

test("a request without --now is looked at at the client's instant, with the client's cache directory", async () => {
  const { fx, cache } = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '0']);
  const argv = ['status', '--tree', fx.tree, '--root', fx.rootFile, '--json'];
  const raw = await rawExchange(
    viewServerSocket(cache, fx.tree),
    JSON.stringify({ v: 3, build: DIST_BUILD, argv, cwd: fx.dir, now: NOW, cacheDir: cache }),
  );
  assert.ok(raw.toString().startsWith(ACCEPTED_LINE), 'taken in, and told so first');
  const r = parseReply(raw);
  assert.type(r, 'object', String(r));
  const reply = r as Exclude<typeof r, string>;
  assert.is(reply.header.served, true, JSON.stringify(reply.header));
  const oneShot = await nixfleet([...argv, '--now', NOW_ISO, '--no-cache']);
  assert.is(reply.stdout, oneShot.out);
  // The stores are written after the reply; the request's log line follows the writes.
  await server.servedCount(1);
  assert.ok(
    readdirSync(cache).some((f) => f.startsWith('status.')),
    'the look kept its stores in the cache directory the client named',
  );
});

test('after a change, the server replays the views it served (--refresh), only those, until they are not asked for (--forget-after)', async () => {
  const { fx, cache, hosts } = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '1', '--forget-after', '3']);
  const args = ['status', ...viewArgs(fx, cache), '--host', hosts[1]!];
  await nixfleet(args);
  await server.servedCount(1);
  const mark = server.lines.length;
  postAcks(fx, hosts[1]!, [{ kind: 'activated', at: NOW - 30_000 }]);
  const line = await server.waitFor(/refreshed /, mark);
  assert.match(line, `--host ${hosts[1]}`);
  assert.ok(
    server.lines
      .slice(mark)
      .every((l) => !/refreshed /.test(l) || l.includes(`--host ${hosts[1]}`)),
    'only the view served is replayed',
  );
  // Not asked again: after --forget-after seconds the view is no longer replayed.
  const forgotten = await server.waitFor(/no longer replayed: /, mark);
  assert.match(forgotten, `--host ${hosts[1]}`);
  // Nor are its stores kept in memory; asked again, it is read from the cache directory, and equal.
  assert.match(await server.waitFor(/no longer kept in memory: /, mark), /\bstatus-host\b/);
  assert.is((await nixfleet(args)).out, (await nixfleet([...args, '--no-cache'])).out);
  assert.is(await server.servedCount(2), 2);
});

test('a burst of acks is followed by a replay of the views served, without waiting for the next refresh', async () => {
  const { fx, cache, hosts } = rollout();
  const server = await startServer(fx.tree, cache, ['--refresh', '3600']);
  const args = ['status', ...viewArgs(fx, cache), '--host', hosts[1]!];
  await nixfleet(args);
  await server.servedCount(1);
  const mark = server.lines.length;
  // A few files: no burst, no replay (the refresh is an hour away).
  postAcks(fx, hosts[1]!, [{ kind: 'activated', at: NOW - 30_000 }]);
  await server.waitFor(/took in 1 arrived/, mark);
  // A burst: twice BURST_FILES files renamed into acks/hosts/ at once (of hosts the release does not
  // name: the intake skips them; a burst is a number of files), so that one chunk holds BURST_FILES
  // even if the intake's moment of gathering names ends within the renames.
  for (let k = 0; k < 2 * BURST_FILES; k++) {
    const tmp = join(fx.tree, 'acks', 'hosts', `.burst-${k}.json.tmp`);
    writeFileSync(tmp, '{}');
    renameSync(tmp, join(fx.tree, 'acks', 'hosts', `burst-${k}.json`));
  }
  const line = await server.waitFor(/refreshed /, mark);
  assert.match(line, `--host ${hosts[1]}`);
});

test('the client asks only for views a server may answer, and refuses malformed replies', () => {
  const env = { HOME: '/nonexistent-home' };
  const none = (argv: string[]) =>
    assert.is(viewRequestOf(argv, '/', env, 0), undefined, argv.join(' '));
  none(['status', '--tree', '/']); // no socket there
  none(['status', '--url', 'https://cp', '--tree', '/']);
  none(['status', '--tree', '/', '--no-cache']);
  none(['status', '--tree', '/', '--help']);
  none(['publish', '--tree', '/']);
  none(['status', '--root', 'r.json']);
  const reply = (header: string, body = '') => parseReply(Buffer.from(`${header}\n${body}`));
  assert.equal(reply('{"served":true,"exit":3,"stdout":2,"stderr":1}', 'abc'), {
    header: { served: true, exit: 3, stdout: 2, stderr: 1 },
    stdout: 'ab',
    stderr: 'c',
  });
  assert.is(
    reply('{"served":true,"exit":0,"stdout":2,"stderr":1}', 'ab'),
    'a reply of the wrong length',
  );
  assert.is(reply('{"served":true,"exit":256,"stdout":0,"stderr":0}'), 'a malformed reply header');
  assert.is(reply('{"served":true,"exit":-1,"stdout":0,"stderr":0}'), 'a malformed reply header');
  assert.is(
    reply('{"served":true,"exit":0,"stdout":"1","stderr":0}', 'a'),
    'a malformed reply header',
  );
  assert.is(reply('nope'), 'a reply header that is not JSON');
  // How long a reply is, told from its start (the client reads that much and no more).
  const served = '{"served":true,"exit":0,"stdout":5,"stderr":2}';
  const length = (head: string) => servedReplyLength(Buffer.from(head));
  assert.is(length(`${served}\nab`), served.length + 1 + 7);
  assert.is(length(`${ACCEPTED_LINE}${served}\n`), ACCEPTED_LINE.length + served.length + 1 + 7);
  assert.is(length(ACCEPTED_LINE), undefined, 'no header yet');
  assert.is(length(served.slice(0, 20)), undefined, 'its line not all there');
  assert.is(length('{"served":false,"reason":"no"}\n'), -1, 'a refusal: read to the close');
  assert.is(length('{"served":true,"exit":0,"stdout":-1,"stderr":0}\n'), -1);
  assert.is(length('nope\n'), -1);
  assert.is(length(' '.repeat(5000)), -1, 'no header line within its limit');
  assert.is(parseReply(Buffer.from('{"served":true}')), 'no reply header');
  assert.is(parseReply(Buffer.from(`{${' '.repeat(5000)}}\n`)), 'no reply header');
});

test('a server of another build serves no view: the command looks by itself and says so; replaced on disk, the server stops (75)', async () => {
  const { fx, cache } = rollout();
  const old = builtCopy(join(fx.dir, 'old-nixfleet'), fakeBuild('0'));
  const server = await startServer(fx.tree, cache, ['--refresh', '0'], old.bin);
  const args = ['status', ...viewArgs(fx, cache)];
  const oneShot = await nixfleet([...args, '--no-cache']);
  const looked = await nixfleet(args);
  assert.is(looked.code, oneShot.code);
  assert.is(looked.out, oneShot.out, "the view is the command's own");
  assert.match(looked.err, /runs another build of nixfleet \(000000000000\) than the command's/);
  assert.match(looked.err, /looking without it \(restart it/);
  assert.equal(server.served(), [], 'nothing was served');
  assert.is(server.proc.exitCode, null, 'its own build is still the one installed: it lives on');
  // The same server meets a client of its own build as before.
  const ownClient = parseReply(
    await rawExchange(
      viewServerSocket(cache, fx.tree),
      JSON.stringify({
        v: 3,
        build: fakeBuild('0'),
        argv: args,
        cwd: fx.dir,
        now: NOW,
        cacheDir: cache,
      }),
    ),
  );
  assert.is(typeof ownClient === 'string' ? ownClient : ownClient.header.served, true);
  // Upgraded in place: the next client of another build finds the server's own build replaced.
  old.setBuild(fakeBuild('1'));
  const exited = new Promise<number | null>((done) => server.proc.on('exit', (code) => done(code)));
  const again = await nixfleet(args);
  assert.is(again.out, oneShot.out);
  assert.match(again.err, /replaced on disk \(111111111111\), so it stops/);
  assert.is(await within(120_000, exited), 75, 'EX_TEMPFAIL: its supervisor starts the new build');
});

test("the server's looks verify with a warm pool it keeps (one thread, the same for every look), ended when it closes", async () => {
  const { fx, cache } = rollout();
  const threads: (number | undefined)[] = [];
  const server = await startViewServer({
    tree: fx.tree,
    cacheDir: cache,
    refreshSeconds: 0,
    forgetSeconds: 600,
    // In place of the command: what verifyBatch would use during the look.
    runCommand: async () => {
      threads.push((installedVerifierPool() as VerifierPool | undefined)?.threadId);
      return 0;
    },
  });
  const pool = installedVerifierPool() as VerifierPool;
  // A look runs in the client's directory (the server chdirs): this process's is put back after.
  const cwd = process.cwd();
  try {
    const request = JSON.stringify({
      v: 3,
      build: SOURCE_BUILD,
      argv: ['status', ...viewArgs(fx, cache)],
      cwd: fx.dir,
      now: NOW,
      cacheDir: cache,
    });
    for (let i = 0; i < 2; i++) {
      const r = parseReply(await rawExchange(server.socket, `${request}\n`));
      assert.equal(typeof r === 'string' ? r : r.header, {
        served: true,
        exit: 0,
        stdout: 0,
        stderr: 0,
      });
    }
  } finally {
    await server.close();
    process.chdir(cwd);
  }
  assert.is(threads.length, 2);
  assert.ok(threads[0] !== undefined, 'a pool with its thread during a look');
  assert.is(threads[1], threads[0]);
  assert.is(installedVerifierPool(), undefined, 'uninstalled at close');
  assert.is(pool.threadId, undefined, 'its thread ended');
});

test('a request that arrives during a burst of replays is taken in and runs before the replays still waiting', async () => {
  const queue = new LookQueue(() => {}, 60_000);
  const ran: string[] = [];
  // Looks are mostly synchronous: each replay here is, entirely.
  const busy = (name: string) => async () => {
    const until = Date.now() + 30;
    while (Date.now() < until);
    ran.push(name);
  };
  let request: Promise<void> | undefined;
  const replays = [1, 2, 3].map((n) =>
    queue.run('refresh', async () => {
      // A client's request arrives (an I/O event) while the first replay runs.
      if (n === 1) setImmediate(() => (request = queue.run('request', busy('request'))));
      await busy(`replay ${n}`)();
    }),
  );
  await Promise.all(replays);
  await request;
  assert.equal(ran, ['replay 1', 'request', 'replay 2', 'replay 3']);
  await queue.idle();
});

test('an intake of arrived acks waits for every request and replay, and does not postpone the idle collection', async () => {
  let idle = 0;
  const queue = new LookQueue(() => idle++, 100);
  const ran: string[] = [];
  const job = (name: string) => async () => void ran.push(name);
  // An intake runs; meanwhile a second intake, a replay and a request arrive, in that order.
  const jobs: Promise<void>[] = [];
  const looking: boolean[] = [];
  jobs.push(
    queue.run('intake', async () => {
      // An intake alone is no look (a replay's tick and the sweep do not wait for it); one waiting is.
      looking.push(queue.looking);
      jobs.push(
        queue.run('intake', job('intake 2')),
        queue.run('refresh', job('replay')),
        queue.run('request', job('request')),
      );
      looking.push(queue.looking);
      await job('intake 1')();
    }),
  );
  while (jobs.length < 4) await new Promise((done) => setImmediate(done));
  await Promise.all(jobs);
  assert.equal(ran, ['intake 1', 'request', 'replay', 'intake 2']);
  assert.equal(looking, [false, true]);
  // Intakes every 20 ms for 400 ms after the looks: the collection still comes 100 ms after the last look.
  const until = Date.now() + 400;
  while (Date.now() < until) {
    await queue.run('intake', job('intake'));
    await new Promise((done) => setTimeout(done, 20));
  }
  assert.is(idle, 1, 'collected once, while intakes ran');
  await queue.idle();
});

test.run();
