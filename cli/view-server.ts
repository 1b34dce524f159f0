// `nixfleet views serve`: one long-running process per tree that keeps the operator views warm, so that
// `nixfleet status` and `nixfleet trace` at 10,000 hosts answer in a fraction of a one-shot look's time
// (issue 10.4). A one-shot look spends most of its time on what it knew a second ago: starting Node and
// compiling, re-reading and decoding its verified stores from the cache directory, warming zod's parsers.
//
// What a served view is: exactly the one-shot look the client would have run (cli/view-client.ts sends its
// argv, working directory and clock), run by the same command code (status.ts, trace.ts through
// runCommand) in this process, with the verified stores kept open between looks instead of re-read from
// disk. Every look still walks the tree, checks every binding and expiry, stats every latest-ack file it
// reads and verifies whatever changed: a served view shows what a one-shot look at that instant would
// (tests/cli/view-server.test.ts compares them byte for byte, also after a tampered ack).
// Between requests the server takes in each latest-ack file as it arrives (cli/ack-intake.ts: verified
// under the last verified release's keys, found by digest by the next look, which still checks every
// claim), and now and then replays the views it served recently whenever the tree, its acks or an ack
// log changed (`--refresh`); both only warm the stores, they answer no one.
import { lstatSync, mkdirSync, realpathSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { z } from 'zod';
import {
  EXIT_OK,
  UsageError,
  directoryOption,
  parseCommandArgs,
  secondsOption,
  type Command,
  type CommandContext,
  type CommandIo,
} from './command.ts';
import {
  buildIdOf,
  flagValue,
  flagValues,
  notServable,
  ownedByThisUser,
  viewServerSocket,
} from './operator-paths.ts';
import { ACCEPTED_LINE, type ViewReplyHeader, type ViewRequest } from './view-client.ts';
import { neutralize } from './terminal.ts';
import { defaultCacheDir, keepVerifierWarm } from '../protocol/index.ts';
import {
  openVerifiedAckStore,
  type VerifiedAckStore,
  ArrivedAcks,
  StatHelper,
  installStatHelper,
} from '../read-side/index.ts';
import { startAckIntake } from './ack-intake.ts';

/**
 * The exit code when the server's build was replaced on disk (BuildCheck): EX_TEMPFAIL, a failure to its
 * supervisor, so that `Restart=on-failure` (the NixOS module's user service) starts the new build.
 */
const EXIT_OUTDATED = 75;
/** A request is one short JSON line; anything longer is not a client of ours. */
const MAX_REQUEST_BYTES = 64 * 1024;
/** A client that connected sends its request at once; one that does not is dropped after this. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Linux's sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/**
 * How long no look must have run before the server collects its garbage (collectGarbage): an operator's
 * looks come in bursts, and a look right after a collection pays to grow the heap again (~60 ms).
 */
const IDLE_MS = 3000;
/**
 * How often the recent views are replayed after a change, by default (seconds). The acks that arrive
 * meanwhile are verified by the intake (cli/ack-intake.ts) within a fraction of a second, so a replay
 * only renews what a look would otherwise redo for the files changed since (a read and a hash each, no
 * signature) and the ack log's tail: once a minute, not every few seconds, which with acks arriving all
 * the time would replay every view each time and make a request that meets a replay wait for it
 * (docs/benchmarks.md "views-served", live).
 */
const DEFAULT_REFRESH_SECONDS = 60;
/** How many distinct views (argv without --now) the refresh replays: the operator's recent looks. */
const RECENT_VIEWS = 8;

const requestSchema = z.strictObject({
  v: z.literal(3),
  build: z.string().max(256),
  argv: z.array(z.string().max(4096)).min(1).max(256),
  cwd: z.string().max(4096).refine(isAbsolute, 'not an absolute path'),
  now: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  cacheDir: z.string().max(4096),
});

export interface ViewServerOptions {
  /** The tree directory (its real path is what clients are matched against). */
  tree: string;
  cacheDir: string;
  /** Replay recent views this often after a change (seconds; 0 = never). */
  refreshSeconds: number;
  /** A view not asked for this long is no longer replayed (seconds). */
  forgetSeconds: number;
  /** One line per request and per refresh (stderr for the command). */
  log?: (line: string) => void;
  /** How a view's command is run: the dispatcher's (CommandContext.runCommand). */
  runCommand: RunCommand;
  /**
   * The build installed where this server's code lies, as it is now (default: dist/build-id beside this
   * module, cli/operator-paths.ts buildIdOf). Read at the start (the server's own build) and again when
   * a client of another build asks: if it changed, the server was upgraded in place and stops (outdated).
   */
  installedBuild?: () => string;
}

type RunCommand = NonNullable<CommandContext['runCommand']>;

export interface ViewServer {
  readonly socket: string;
  /**
   * Settles when a client of another build found this server's own code replaced on disk (an upgrade in
   * place): it answers no one any more, and the command exits so that its supervisor starts the new build.
   */
  readonly outdated: Promise<void>;
  close(): Promise<void>;
}

/** A view asked for: its argv and directory, and when it was last asked (ms). */
type Look = { argv: string[]; cwd: string; askedAt: number };

/** Starts serving `o.tree`; fails (UsageError) when another server serves it or the socket cannot be made. */
export async function startViewServer(o: ViewServerOptions): Promise<ViewServer> {
  const tree = realpathSync(o.tree);
  const cacheDir = privateCacheDir(o.cacheDir);
  const socket = await claimSocket(cacheDir, tree);
  const log = o.log ?? (() => {});
  const gc = collectGarbage();
  const queue = new LookQueue(gc);
  const recent = new Map<string, Look>();
  // Acks verified as they arrive (cli/ack-intake.ts), consulted by every kept store's ack caches.
  const arrived = new ArrivedAcks();
  const stores = new KeptStores(arrived);
  const installedBuild = o.installedBuild ?? (() => buildIdOf(import.meta.url));
  const builds = new BuildCheck(installedBuild);
  /**
   * Runs a look; `answered` has its exit code before the stores write their files, which serve only a
   * restarted server or a one-shot look (the kept stores serve the next look here): at 10,000 hosts
   * ~0.1-0.2 s of a look that took a minute of acks in, which the operator no longer waits for. The
   * writes still happen before the next look starts (looks run one at a time).
   */
  const runLook = async (look: Look, io: CommandIo, answered: (exit: number) => void) => {
    try {
      const exit = await runView(look, cacheDir, io, stores.open, o.runCommand);
      answered(exit);
      return exit;
    } finally {
      stores.saveDeferred();
      const acks = stores.ackCountsOfLook();
      if (acks !== null)
        log(
          `the look's acks: ${acks.verified} verified by it, ${acks.arrived} verified as they arrived, ${acks.reused} from its cache`,
        );
    }
  };

  // Half-open: the client ends its side once the request is sent, and the reply still goes back.
  const server = createServer({ allowHalfOpen: true }, (conn) =>
    serveConnection(conn, { tree, cacheDir, queue, runLook, recent, log, builds }),
  );
  await listenPrivately(server, socket);
  const inode = lstatSync(socket).ino;
  // Every look's signature batches are helped by one thread kept warm (protocol/verify/batch-pool.ts),
  // and its stats of the latest-ack files by another (read-side/stat-helper.ts).
  const verifier = keepVerifierWarm();
  const stats = StatHelper.start();
  const uninstallStats = installStatHelper(stats);
  const refresh = startRefresh({ tree, queue, recent, runLook, log }, o.refreshSeconds);
  // After a burst of acks, the recent views are replayed at once rather than at the next refresh.
  const intake = startAckIntake({ tree, queue, arrived, log, burst: refresh.now });
  const upkeep = [
    refresh.stop,
    startSweep({ queue, recent, stores, arrived, log, gc }, o.forgetSeconds),
    () => intake.stop(),
  ];
  log(`serving ${tree} at ${socket}`);
  return {
    socket,
    outdated: builds.outdated,
    async close() {
      for (const stop of upkeep) stop();
      await new Promise<void>((done) => server.close(() => done()));
      await queue.idle();
      await verifier.close();
      uninstallStats();
      await stats.close();
      removeOwnSocket(socket, inode);
    },
  };
}

/** The socket path for `tree`, checked and free (a dead server's socket taken over). */
async function claimSocket(cacheDir: string, tree: string): Promise<string> {
  const socket = viewServerSocket(cacheDir, tree);
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES)
    throw new UsageError(
      `the socket path ${socket} is over the ${MAX_SOCKET_PATH_BYTES} bytes a Unix socket allows: give a shorter --cache-dir`,
    );
  await takeOverStaleSocket(socket, tree);
  return socket;
}

/**
 * Every `refreshSeconds` (0: never), after a change, replays the views served recently (their output
 * discarded), so that what arrived meanwhile is verified before someone asks; `now` does so at once
 * (after a burst of acks; nothing when refreshing is off). Returns `now` and its stop.
 */
function startRefresh(
  s: Pick<Serving, 'tree' | 'queue' | 'recent' | 'runLook' | 'log'>,
  refreshSeconds: number,
): { now: () => void; stop: () => void } {
  const { tree, queue, recent, log } = s;
  const changes = new ChangeWatch([tree, join(tree, 'acks'), join(tree, 'acks', 'hosts')]);
  const replay = (look: Look) =>
    queue.run('refresh', async () => {
      const started = performance.now();
      try {
        const exit = await s.runLook(look, discardIo, () => {});
        log(`refreshed ${describe(look.argv)} -> exit ${exit} in ${msSince(started)} ms`);
      } catch (e) {
        // Its directory went away, say: the view is no longer replayed.
        forget(recent, look);
        log(`refresh of ${describe(look.argv)} failed: ${describe([(e as Error).message])}`);
      }
    });
  const tick = () => {
    // An intake running or waiting is no reason to wait: replays go before it.
    if (!changes.takeDirty() || queue.looking) return;
    for (const look of recent.values()) {
      for (const dir of ackLogDirs(look)) changes.add(dir);
      void replay(look);
    }
  };
  const timer = refreshSeconds > 0 ? setInterval(tick, refreshSeconds * 1000) : undefined;
  timer?.unref();
  return {
    now: () => {
      if (timer !== undefined) tick();
    },
    stop: () => {
      if (timer) clearInterval(timer);
      changes.close();
    },
  };
}

/**
 * What no one asked for within `forgetSeconds`: no longer replayed, and its stores no longer kept in
 * memory (then a full collection). Checked every min(60, forgetSeconds) seconds. Returns its stop.
 */
function startSweep(
  s: Pick<Serving, 'queue' | 'recent' | 'log'> & {
    stores: KeptStores;
    arrived: ArrivedAcks;
    gc: () => void;
  },
  forgetSeconds: number,
): () => void {
  const { queue, recent, stores, log } = s;
  const sweep = () => {
    const before = Date.now() - forgetSeconds * 1000;
    for (const look of recent.values())
      if (look.askedAt < before) {
        forget(recent, look);
        log(`no longer replayed: ${describe(look.argv)} (not asked for ${forgetSeconds} s)`);
      }
    // Between looks (an intake touches no store).
    if (queue.looking) return;
    const dropped = stores.forgetUsedBefore(before);
    const arrivals = s.arrived.forgetBefore(before);
    if (arrivals > 0) dropped.push(`${arrivals} ack(s) verified as they arrived`);
    if (dropped.length === 0) return;
    log(`no longer kept in memory: ${dropped.join(', ')}`);
    s.gc();
  };
  const sweeper = setInterval(sweep, Math.min(60, Math.max(1, forgetSeconds)) * 1000);
  sweeper.unref();
  return () => clearInterval(sweeper);
}

/** The cache directory, made 0700 if missing; refused unless this user's own and private. */
function privateCacheDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const real = realpathSync(dir);
  if (!ownedByThisUser(lstatSync(real)))
    throw new UsageError(`--cache-dir ${dir}: not this user's own, or writable by others`);
  return real;
}

/** A socket left by a server that died is removed; a live one means this tree is served already. */
async function takeOverStaleSocket(socket: string, tree: string): Promise<void> {
  let st;
  try {
    st = lstatSync(socket);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new UsageError(`${socket} exists and is not a socket`);
  const live = await new Promise<boolean>((done) => {
    const probe = connect(socket);
    probe.on('connect', () => {
      probe.destroy();
      done(true);
    });
    probe.on('error', () => done(false));
  });
  if (live) throw new UsageError(`a view server already serves ${tree} (at ${socket})`);
  unlinkSync(socket);
}

/** Listens with the socket created 0600 (the umask applies to bind's file). */
async function listenPrivately(server: Server, socket: string): Promise<void> {
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(socket, () => {
        server.off('error', fail);
        done();
      });
    });
  } finally {
    process.umask(umask);
  }
}

/** Removes the socket at close, unless another server has replaced it since. */
function removeOwnSocket(socket: string, inode: number): void {
  try {
    if (lstatSync(socket).ino === inode) unlinkSync(socket);
  } catch {
    // already gone
  }
}

interface Serving {
  tree: string;
  cacheDir: string;
  queue: LookQueue;
  runLook: (look: Look, io: CommandIo, answered: (exit: number) => void) => Promise<number>;
  recent: Map<string, Look>;
  log: (line: string) => void;
  builds: BuildCheck;
}

/**
 * The build this server runs and whether it is still the one installed. A client of another build is
 * refused (its view would be printed by other code than its own: after an upgrade, say, the old
 * verification); the client looks by itself and tells the operator. Which of the two is newer only the
 * disk can say: if this server's own build-id changed since it started, it is the old one, and stops.
 */
class BuildCheck {
  readonly own: string;
  private stop!: () => void;
  readonly outdated = new Promise<void>((resolve) => (this.stop = resolve));

  constructor(private readonly installed: () => string) {
    this.own = installed();
  }

  /** Null when `build` is this server's; else why it is refused (and the server stops if replaced). */
  refuse(build: string): string | null {
    if (build === this.own) return null;
    const now = this.installed();
    const replaced = now !== this.own;
    if (replaced) this.stop();
    return `it runs another build of nixfleet (${short(this.own)}) than the command's (${short(build)})${
      replaced ? `; its own was replaced on disk (${short(now)}), so it stops` : ''
    }`;
  }
}

const short = (build: string) => neutralize(build.replace(/^sha256:/, '').slice(0, 12));

/** Reads one request, answers it, closes. */
function serveConnection(conn: Socket, s: Serving): void {
  const chunks: Buffer[] = [];
  let size = 0;
  conn.setTimeout(REQUEST_TIMEOUT_MS, () => conn.destroy());
  conn.on('error', () => {}); // a client that went away: nothing to answer
  conn.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) return void reply(conn, refusal('a request over 64 KiB'));
    chunks.push(chunk);
  });
  conn.on('end', () => {
    if (size > MAX_REQUEST_BYTES) return;
    conn.setTimeout(0);
    const request = admit(Buffer.concat(chunks), s);
    if ('header' in request) return void reply(conn, request);
    // Taken in: said at once, while the look may wait for others (the client's sign of a live server).
    conn.write(ACCEPTED_LINE);
    void answer(request, s, (r) => reply(conn, r));
  });
}

type Reply = { header: ViewReplyHeader; stdout: string; stderr: string };
const refusal = (reason: string, extra: { otherBuild?: true } = {}): Reply => ({
  header: { served: false, reason, ...extra },
  stdout: '',
  stderr: '',
});

function reply(conn: Socket, r: Reply): void {
  const out = Buffer.from(r.stdout);
  const err = Buffer.from(r.stderr);
  const header = r.header.served
    ? { ...r.header, stdout: out.length, stderr: err.length }
    : r.header;
  conn.end(Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), out, err]));
}

/** The request, if this server serves it; else the refusal that says why. */
function admit(bytes: Buffer, s: Serving): ViewRequest | Reply {
  const request = parseRequest(bytes);
  if (typeof request === 'string') return refusal(request);
  const otherBuild = s.builds.refuse(request.build);
  if (otherBuild !== null) return refusal(otherBuild, { otherBuild: true });
  const notOurs = whyNotServed(request, s);
  return notOurs === null ? request : refusal(notOurs);
}

/**
 * Sends the reply to a request admitted: its view, or why the look failed. The log line follows once
 * the look's stores are written (with the time the client waited).
 */
async function answer(request: ViewRequest, s: Serving, send: (r: Reply) => void): Promise<void> {
  const look = { argv: withInstant(request), cwd: request.cwd, askedAt: Date.now() };
  const captured = { stdout: [] as string[], stderr: [] as string[] };
  const io: CommandIo = {
    stdout: (t) => void captured.stdout.push(t),
    stderr: (t) => void captured.stderr.push(t),
  };
  const started = performance.now();
  let waited = '';
  const answered = (exit: number) => {
    send({
      header: { served: true, exit, stdout: 0, stderr: 0 },
      stdout: captured.stdout.join(''),
      stderr: captured.stderr.join(''),
    });
    waited = msSince(started);
  };
  let exit: number;
  try {
    exit = await s.queue.run('request', () => s.runLook(look, io, answered));
  } catch (e) {
    // What runCommand does not turn into an exit code (the client's directory is gone, say): the
    // client looks by itself and meets the same problem there, in its own words.
    return send(refusal(`the look failed: ${(e as Error).message}`));
  }
  s.log(`${describe(request.argv)} -> exit ${exit} in ${waited} ms`);
  remember(s.recent, { argv: request.argv, cwd: request.cwd, askedAt: Date.now() });
}

/** A view's argv for the log (the operator's own words, still kept from driving a terminal). */
const describe = (argv: string[]) => neutralize(argv.join(' '));
const msSince = (start: number) => (performance.now() - start).toFixed(0);

function parseRequest(bytes: Buffer): ViewRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'a request that is not JSON';
  }
  const parsed = requestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return `a malformed request: ${issue.path.join('.') || '(request)'}: ${issue.message}`;
  }
  return parsed.data;
}

/** Null when this server serves the request: a view of its own tree, with its own cache directory. */
function whyNotServed(r: ViewRequest, s: Serving): string | null {
  const notAView = notServable(r.argv);
  if (notAView !== null) return notAView;
  const real = (path: string | undefined) => {
    try {
      return path === undefined ? undefined : realpathSync(resolve(r.cwd, path));
    } catch {
      return undefined;
    }
  };
  if (real(flagValue(r.argv, 'tree')) !== s.tree) return `not the tree served (${s.tree})`;
  const cacheFlag = flagValue(r.argv, 'cache-dir');
  const cacheDir = real(cacheFlag ?? r.cacheDir);
  if (cacheDir !== s.cacheDir) return `not the cache directory served (${s.cacheDir})`;
  return null;
}

/**
 * The argv a one-shot look would have run with, made explicit: the client's instant (its --now, else
 * its clock when it started) and its cache directory (the server's environment may name another default).
 */
function withInstant(r: ViewRequest): string[] {
  const argv = [...r.argv];
  if (flagValue(argv, 'now') === undefined) argv.push('--now', new Date(r.now).toISOString());
  if (flagValue(argv, 'cache-dir') === undefined) argv.push('--cache-dir', r.cacheDir);
  return argv;
}

const lookKey = (look: Look) => JSON.stringify([look.cwd, ...look.argv]);
const forget = (recent: Map<string, Look>, look: Look) => recent.delete(lookKey(look));

/** Keeps the most recent views, by argv without the instant (a later look of it asks the clock again). */
function remember(recent: Map<string, Look>, look: Look): void {
  const key = lookKey(look);
  recent.delete(key);
  recent.set(key, look);
  while (recent.size > RECENT_VIEWS) recent.delete(recent.keys().next().value!);
}

/** The directories of the ack logs a view names (their appends are changes). */
function ackLogDirs(look: Look): string[] {
  return flagValues(look.argv, 'acks-log').flatMap((file) =>
    file === undefined ? [] : [dirname(resolve(look.cwd, file))],
  );
}

/**
 * Runs one view as the one-shot CLI would, in the client's working directory (looks run one at a time,
 * so the process's directory is the look's while it runs: its relative paths and its messages are the
 * client's).
 */
async function runView(
  look: Look,
  cacheDir: string,
  io: CommandIo,
  openStore: (dir: string, name: string) => VerifiedAckStore,
  runCommand: RunCommand,
): Promise<number> {
  process.chdir(look.cwd);
  return runCommand(look.argv[0]!, look.argv.slice(1), {
    io,
    // The request's cache directory is the server's (whyNotServed), however the request spells it.
    openStore: (_dir, name) => openStore(cacheDir, name),
  });
}

const discardIo: CommandIo = { stdout: () => {}, stderr: () => {} };

/**
 * The verified stores of the views served, one per store name (status, status-host, trace), kept open
 * between looks: a look after the first is served what the last one saved, from memory
 * (VerifiedAckStore.renew, read-side/verified-cache.ts), as a re-open of the files it wrote would serve
 * it. Each store still saves to the cache directory, so a restarted server or a one-shot look finds it warm.
 */
class KeptStores {
  private readonly stores = new Map<string, { store: VerifiedAckStore; openedAt: number }>();
  /** The stores whose look asked them to save, saved by saveDeferred. */
  private readonly unsaved = new Set<VerifiedAckStore>();
  /** The stores the current look opened (ackCountsOfLook). */
  private readonly opened = new Set<VerifiedAckStore>();

  /** `arrived`: the acks verified as they arrived, which every store's ack caches consult. */
  constructor(private readonly arrived: ArrivedAcks) {}

  open = (dir: string, name: string): VerifiedAckStore => {
    // The look's start, before it looks at any file (the racy rule of the latest-ack memo).
    const startedAt = Date.now();
    const kept = this.stores.get(name);
    if (kept !== undefined) {
      kept.store.renew(startedAt);
      kept.openedAt = startedAt;
      return this.savedLater(kept.store);
    }
    const store = openVerifiedAckStore(dir, name, startedAt, this.arrived);
    this.stores.set(name, { store, openedAt: startedAt });
    return this.savedLater(store);
  };

  /**
   * What the ack caches of the stores the look just run opened counted (AckCache.counts, summed): how
   * many acks it verified itself and how many it found verified as they arrived. Null: it opened none.
   */
  ackCountsOfLook(): { verified: number; arrived: number; reused: number } | null {
    let sum: { verified: number; arrived: number; reused: number } | null = null;
    for (const store of this.opened) {
      const c = store.ackCounts;
      if (c === null) continue;
      sum ??= { verified: 0, arrived: 0, reused: 0 };
      sum.verified += c.verified;
      sum.arrived += c.arrived;
      sum.reused += c.reused;
    }
    this.opened.clear();
    return sum;
  }

  /** The store as a look uses it: its save() is noted, and done by saveDeferred() (after the answer). */
  private savedLater(store: VerifiedAckStore): VerifiedAckStore {
    this.opened.add(store);
    return new Proxy(store, {
      get: (target, key) =>
        key === 'save' ? () => void this.unsaved.add(target) : Reflect.get(target, key),
    });
  }

  /** Writes what the looks since the last call asked to save (before the next look renews a store). */
  saveDeferred(): void {
    for (const store of this.unsaved) store.save();
    this.unsaved.clear();
  }

  /**
   * Between looks: drops the stores, and the scopes of a store, that no look started at or after
   * `before` used (a view no longer asked for). They are read from the cache directory if asked again,
   * as by a restarted server. Returns what was dropped, for the log.
   */
  forgetUsedBefore(before: number): string[] {
    const dropped: string[] = [];
    for (const [name, kept] of this.stores)
      if (kept.openedAt < before) {
        this.stores.delete(name);
        dropped.push(name);
      } else {
        const scopes = kept.store.forgetScopesUsedBefore(before);
        if (scopes > 0) dropped.push(`${scopes} scope(s) of ${name}`);
      }
    return dropped;
  }
}

/**
 * A full garbage collection, for when no look is running. V8 grows its heap lazily and collects it
 * when allocation asks for room, so a process that idles between looks would keep the garbage of its
 * last ones: a server of five views at 10,000 hosts grew to ~680 MB resident while what its stores keep
 * is ~65 MB of heap (~180 MB resident, collected after each look). Collected once idle (IDLE_MS), it
 * costs no one waiting. `gc` is V8's own, exposed by its flag at run time instead of on the command line.
 */
function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * What the queue runs: a look asked for, a replay of a recent view, or an intake of acks as they
 * arrived (cli/ack-intake.ts).
 */
export type LookKind = 'request' | 'refresh' | 'intake';
/** The order waiting jobs run in: a request first, then replays, an intake of arrived acks last. */
const PRIORITY: Record<LookKind, number> = { request: 0, refresh: 1, intake: 2 };

/**
 * Looks run one at a time (each changes the process's working directory and its stores), and an intake
 * between them (it consults what looks verified); a request goes before any replay still waiting, and
 * a replay before any intake.
 */
export class LookQueue {
  private waiting: { kind: LookKind; start: () => void }[] = [];
  private running: LookKind | null = null;
  private drained: (() => void)[] = [];

  private idleTimer: NodeJS.Timeout | undefined;
  /** A look (not an intake) ran since onIdle was last scheduled. */
  private looked = false;

  /**
   * `onIdle` runs once no look has run for `idleMs` (a burst of requests is not interrupted by it). An
   * intake is not a look: acks arriving all the time would otherwise postpone it for ever.
   */
  constructor(
    private readonly onIdle: () => void = () => {},
    private readonly idleMs = IDLE_MS,
  ) {}

  get busy(): boolean {
    return this.running !== null || this.waiting.length > 0;
  }

  /** Whether a request or a replay runs or waits (an intake alone does not count). */
  get looking(): boolean {
    return [this.running, ...this.waiting.map((w) => w.kind)].some(
      (k) => k === 'request' || k === 'refresh',
    );
  }

  run<T>(kind: LookKind, job: () => Promise<T>): Promise<T> {
    return new Promise<T>((done, fail) => {
      const start = () => {
        // The next look starts after the event loop has turned: a look is mostly synchronous, so
        // without this a burst of replays would run back to back on promise callbacks alone, and a
        // request arriving meanwhile would be neither taken in (its accepted line) nor put first.
        job()
          .then(done, fail)
          .finally(() => setImmediate(() => this.next()));
      };
      const after = this.waiting.findIndex((w) => PRIORITY[w.kind] > PRIORITY[kind]);
      this.waiting.splice(after === -1 ? this.waiting.length : after, 0, { kind, start });
      if (this.running === null) this.next();
    });
  }

  private next(): void {
    const job = this.waiting.shift();
    this.running = job?.kind ?? null;
    if (job) {
      if (job.kind !== 'intake') {
        clearTimeout(this.idleTimer);
        this.looked = true;
      }
      job.start();
      return;
    }
    for (const done of this.drained.splice(0)) done();
    if (!this.looked) return;
    this.looked = false;
    this.idleTimer = setTimeout(() => {
      if (!this.looking) this.onIdle();
    }, this.idleMs);
    this.idleTimer.unref();
  }

  idle(): Promise<void> {
    return this.busy ? new Promise((done) => this.drained.push(done)) : Promise.resolve();
  }
}

/**
 * Whether anything a view reads may have changed since the last refresh: the tree's directory (a new
 * timestamp, the control plane's `current` swap), acks/ and acks/hosts/ (the endpoint renames each new
 * latest-ack file into place) and the ack logs' directories. Only an optimisation: a look never trusts
 * it (each stats what it reads); a directory that cannot be watched counts as always changed.
 */
class ChangeWatch {
  private dirty = true;
  private watchers = new Map<string, FSWatcher | null>();

  constructor(dirs: string[]) {
    for (const dir of dirs) this.add(dir);
  }

  add(dir: string): void {
    if (this.watchers.has(dir)) return;
    try {
      const w = watch(dir, { persistent: false }, () => (this.dirty = true));
      w.on('error', () => this.watchers.set(dir, null));
      this.watchers.set(dir, w);
    } catch {
      this.watchers.set(dir, null);
    }
  }

  takeDirty(): boolean {
    const was = this.dirty || [...this.watchers.values()].includes(null);
    this.dirty = false;
    return was;
  }

  close(): void {
    for (const w of this.watchers.values()) w?.close();
  }
}

const command: Command = {
  name: 'views serve',
  summary:
    'keep the operator views of a tree warm in memory: `status` and `trace` of it answer from here',
  help: `Usage: nixfleet views serve --tree DIR [--cache-dir DIR] [--refresh SECONDS]

Serves \`nixfleet status\` and \`nixfleet trace\` of the tree DIR (--tree given to them naming the same
directory, with the same cache directory) from one long-running process, over a Unix socket in the cache
directory (views-<tag>.sock, 0600; the directory must be this user's own and writable by no one else).
The views then answer without starting a look from nothing: the process is warm and keeps its verified
stores in memory.

A served view is the one-shot look the command would have run: the same options, the client's instant
(its --now, else its clock) and working directory, the same verification (the tree walked, every binding
and expiry checked, every latest-ack file read stat'ed, whatever changed verified); only what was verified
before is remembered in memory instead of re-read from the cache directory. \`--no-cache\` and \`--url\`
views are never served. With no server running, or one that cannot answer, the commands look themselves.

Each latest-ack file the ack endpoint puts in acks/hosts/ is taken in as it arrives (read, taken in
strictly, its signature checked under the host key of the release the last look verified), between
requests and after them, so that a look meets new acks already verified; it still reads every file and
checks every ack's claims against its own release. After a change (a new timestamp or tree, a new ack
file, an ack log append) the server also replays the views it served recently (at most ${RECENT_VIEWS}, each
asked within --forget-after seconds) every --refresh seconds: that renews what the intake does not (which
files are unchanged, the ack log's verified prefix, a new timestamp's walk). Each replay costs what a look
costs (10,000 hosts: ~0.2-0.5 s of CPU per view) and a request that meets one waits for it.

Only clients of the server's own build are served (dist/build-id): after an upgrade a server still running
the old build refuses the new command, which looks by itself and says so. A server whose own build was
replaced on disk (an upgrade in place) stops when such a client asks, with exit code 75, so that its
supervisor starts the new build; the NixOS module's user service does (Restart=on-failure).

Exit codes: 0 stopped by SIGTERM or SIGINT, 2 usage or I/O error (also: a server already serves the tree),
75 its build was replaced on disk.

Options:
  --tree DIR        the published tree or control plane directory to serve
  --cache-dir DIR   the operator cache directory (default as for \`nixfleet status\`)
  --refresh S       replay recent views this often after a change (default ${DEFAULT_REFRESH_SECONDS}; 0 = only on request)
  --forget-after S  stop replaying a view no one asked for this long (default 600)`,
  async run(argv, context) {
    const { values, positionals } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      'cache-dir': { type: 'string' },
      refresh: { type: 'string' },
      'forget-after': { type: 'string' },
    });
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.tree) throw new UsageError('--tree is required');
    const tree = directoryOption('--tree', values.tree);
    const cacheDir = values['cache-dir'] ?? defaultCacheDir();
    if (cacheDir === null) throw new UsageError('no cache directory: give --cache-dir');
    const log = (line: string) => process.stderr.write(`nixfleet views serve: ${line}\n`);
    const server = await startViewServer({
      tree,
      cacheDir,
      refreshSeconds: secondsOption('--refresh', values.refresh) ?? DEFAULT_REFRESH_SECONDS,
      forgetSeconds: secondsOption('--forget-after', values['forget-after']) ?? 600,
      log,
      runCommand: context!.runCommand!,
    });
    const stopped = await new Promise<'signal' | 'outdated'>((stop) => {
      process.once('SIGTERM', () => stop('signal'));
      process.once('SIGINT', () => stop('signal'));
      void server.outdated.then(() => stop('outdated'));
    });
    await server.close();
    if (stopped === 'signal') return EXIT_OK;
    log('its build was replaced on disk: stopping, to be started again as the new build');
    return EXIT_OUTDATED;
  },
};
export default command;
