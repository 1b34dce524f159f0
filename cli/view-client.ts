// The client side of the view server (cli/view-server.ts): `nixfleet status` and `nixfleet trace` of a
// tree directory first ask the server of that tree, if one runs, and print its answer; otherwise they look
// themselves, as always. bin/nixfleet.js calls this before any of the CLI loads (dist/view-client.cjs), so
// it imports node built-ins and cli/operator-paths.ts, cli/terminal.ts only.
//
// Why this is safe: the server runs exactly the command the client would have run (the same argv, the
// same instant, the client's working directory), verifying as a one-shot look does, with its verified
// stores kept in memory instead of re-read from the cache directory. The socket lies in that directory,
// so it is trusted as far as the directory's caches are: both must be this user's own and writable by no
// one else, or the server is not asked.
import { lstatSync, realpathSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import {
  buildIdOf,
  flagValue,
  notServable,
  operatorCacheDir,
  ownedByThisUser,
  viewServerSocket,
} from './operator-paths.ts';
import { neutralize } from './terminal.ts';

/** What a client sends, one JSON line (cli/view-server.ts checks it strictly). */
export interface ViewRequest {
  /** 3: the request names the client's build; the reply starts with ACCEPTED_LINE once taken in. */
  v: 3;
  /**
   * The client's build (dist/build-id, cli/operator-paths.ts buildIdOf): a server of another build
   * refuses (otherBuild), so no view is ever printed by other code than the command's own.
   */
  build: string;
  argv: string[];
  cwd: string;
  /** The client's clock when it started (ms): the instant a one-shot look would have taken. */
  now: number;
  /** The cache directory the client found the socket in (the server serves only its own). */
  cacheDir: string;
}

/**
 * Sent first, at once, when the server takes a request it will look at in: a server that is alive answers
 * it within a look's time however long the look it then runs takes, so its absence is the client's one
 * sign of a stopped or stuck server (connecting succeeds all the same: the kernel queues the connection).
 */
export const ACCEPTED_LINE = '{"accepted":true}\n';

/** The first line of a reply (after ACCEPTED_LINE, when sent); the outputs' bytes follow, stdout then stderr. */
export type ViewReplyHeader =
  | { served: true; exit: number; stdout: number; stderr: number }
  | { served: false; reason: string; otherBuild?: true };

/** A reply's header line is short; anything longer is not a reply of ours. */
export const MAX_REPLY_HEADER = 4096;
/** How long a connect may take before the client looks by itself (a listening server accepts at once). */
const CONNECT_TIMEOUT_MS = 2000;
/**
 * How long a client waits for a connected server's first byte before it looks by itself. The server
 * answers between two looks, so this is the longest look it may be in the middle of (a refresh of a
 * `trace` at 100,000 hosts: ~10 s), not the one asked for: once accepted, the client waits for its look
 * as it would for its own.
 */
export const ACCEPT_TIMEOUT_MS = 20_000;

/** The request for argv, or undefined when no server can answer it (another command, --url, --no-cache, --help). */
export function viewRequestOf(
  argv: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  now: number,
): { request: ViewRequest; socket: string } | undefined {
  if (notServable(argv) !== null) return undefined;
  const cacheDir = operatorCacheDir(argv, env);
  const tree = flagValue(argv, 'tree');
  if (cacheDir === undefined || tree === undefined) return undefined;
  let realTree: string;
  try {
    realTree = realpathSync(resolve(cwd, tree));
  } catch {
    return undefined; // the command itself says what is wrong with --tree
  }
  const dir = resolve(cwd, cacheDir);
  const socket = viewServerSocket(dir, realTree);
  if (!trustedSocket(socket)) return undefined;
  const build = buildIdOf(import.meta.url);
  return { request: { v: 3, build, argv: [...argv], cwd, now, cacheDir: dir }, socket };
}

/** A socket that is this user's own, in a directory that is too. */
function trustedSocket(socket: string): boolean {
  try {
    const st = lstatSync(socket);
    return st.isSocket() && ownedByThisUser(st) && ownedByThisUser(lstatSync(dirname(socket)));
  } catch {
    return false;
  }
}

/**
 * Asks the view server for argv's view and prints it: the command's exit code, or undefined when no
 * server answered (none runs, it serves another tree, it went away): the caller then looks itself.
 */
export async function askViewServer(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  acceptTimeoutMs = ACCEPT_TIMEOUT_MS,
): Promise<number | undefined> {
  const asked = viewRequestOf(argv, process.cwd(), env, Date.now());
  if (asked === undefined) return undefined;
  let reply: Buffer;
  try {
    // Done once the reply is whole (its header gives its length): the server writes its stores after
    // the reply, before its side of the connection closes, and the operator need not wait for that.
    reply = await exchange(
      asked.socket,
      `${JSON.stringify(asked.request)}\n`,
      acceptTimeoutMs,
      servedReplyLength,
    );
  } catch (e) {
    if (e instanceof NotAccepted) {
      process.stderr.write(
        neutralize(
          `nixfleet: the view server at ${asked.socket}: ${e.message}; looking without it\n`,
        ),
      );
    } else debug(env, `no view server at ${asked.socket}: ${(e as Error).message}`);
    return undefined;
  }
  const parsed = parseReply(reply);
  if (typeof parsed === 'string') {
    process.stderr.write(
      neutralize(`nixfleet: the view server at ${asked.socket}: ${parsed}; looking without it\n`),
    );
    return undefined;
  }
  if (!parsed.header.served) {
    const why = `the view server at ${asked.socket} did not serve: ${parsed.header.reason}`;
    // A server of another build, or of an older request format (it cannot say which): of no use to
    // this command until it is restarted, which the operator should hear of.
    if (parsed.header.otherBuild || parsed.header.reason.startsWith('a malformed request'))
      process.stderr.write(neutralize(`nixfleet: ${why}; looking without it (${RESTART_HINT})\n`));
    else debug(env, why);
    return undefined;
  }
  // The terminal guard of cli/terminal.ts, as at every sink: the text may quote a host's ack.
  process.stdout.write(neutralize(parsed.stdout));
  process.stderr.write(neutralize(parsed.stderr));
  return parsed.header.exit;
}

/** How a view server of another build is replaced (the NixOS module runs it as this user service). */
const RESTART_HINT = 'restart it, e.g. `systemctl --user restart nixfleet-views`';

function debug(env: NodeJS.ProcessEnv, text: string): void {
  if (env.NIXFLEET_DEBUG) process.stderr.write(neutralize(`nixfleet: ${text}\n`));
}

/** A connected server that sent nothing within the accept timeout: stopped, or stuck in a look. */
export class NotAccepted extends Error {}

/**
 * Sends the request and reads the whole reply: until it holds as many bytes as `wholeLength` says once
 * it can tell from the bytes so far (undefined: not yet; -1: never, read to the close), else until the
 * server closes. Fails when the connection cannot be made in CONNECT_TIMEOUT_MS, or the server sends
 * nothing in `acceptTimeoutMs` (NotAccepted).
 */
export function exchange(
  socket: string,
  request: string,
  acceptTimeoutMs: number,
  wholeLength: (head: Buffer) => number | undefined = () => -1,
): Promise<Buffer> {
  return new Promise((done, fail) => {
    let chunks: Buffer[] = [];
    let received = 0;
    let expected: number | undefined;
    const conn = connect(socket);
    let timer = setTimeout(
      () => conn.destroy(new Error(`no connection in ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    conn.on('connect', () => {
      clearTimeout(timer);
      conn.end(request);
      timer = setTimeout(
        () => conn.destroy(new NotAccepted(`no answer in ${acceptTimeoutMs / 1000} s`)),
        acceptTimeoutMs,
      );
    });
    conn.on('data', (chunk: Buffer) => {
      clearTimeout(timer);
      chunks.push(chunk);
      received += chunk.length;
      // Joined only until the length is known (the header's line: the first chunk or two).
      if (expected === undefined) {
        chunks = [Buffer.concat(chunks)];
        expected = wholeLength(chunks[0]!);
      }
      if (expected === undefined || expected < 0 || received < expected) return;
      done(Buffer.concat(chunks));
      conn.destroy();
    });
    conn.on('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    conn.on('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) done(Buffer.concat(chunks));
    });
  });
}

/**
 * How many bytes the reply that begins with `head` holds in all, by its header's counts (with the
 * accepted line before it): undefined while its header line has not all arrived, -1 when it is not a
 * served reply's header (a refusal, or something parseReply refuses: read to the close).
 */
export function servedReplyLength(head: Buffer): number | undefined {
  const line = headerLine(head);
  if (line === null) return undefined;
  if (typeof line === 'string') return -1;
  const { h, body } = line;
  if (h?.served !== true || !isCount(h.stdout) || !isCount(h.stderr)) return -1;
  return body + (h.stdout as number) + (h.stderr as number);
}

/**
 * A reply's header line (after ACCEPTED_LINE, when sent), parsed, with where the outputs begin; what
 * is wrong with it; or null while the line has not all arrived (and may still).
 */
function headerLine(
  bytes: Buffer,
): { h: Record<string, unknown> | null; body: number } | string | null {
  const from =
    bytes.subarray(0, ACCEPTED_LINE.length).toString('latin1') === ACCEPTED_LINE
      ? ACCEPTED_LINE.length
      : 0;
  const eol = bytes.indexOf(0x0a, from);
  if (eol - from > MAX_REPLY_HEADER || (eol === -1 && bytes.length - from > MAX_REPLY_HEADER))
    return 'no reply header';
  if (eol === -1) return null;
  try {
    const h = JSON.parse(bytes.subarray(from, eol).toString('utf8')) as Record<string, unknown>;
    return { h, body: eol + 1 };
  } catch {
    return 'a reply header that is not JSON';
  }
}

/** A byte count or exit code as a header gives it: a non-negative safe integer. */
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

/** The reply's header and outputs, or what is wrong with it. */
export function parseReply(
  whole: Buffer,
): { header: ViewReplyHeader; stdout: string; stderr: string } | string {
  const line = headerLine(whole);
  if (line === null) return 'no reply header';
  if (typeof line === 'string') return line;
  const { h, body: at } = line;
  if (h?.served === false && typeof h.reason === 'string') {
    const refused = { served: false as const, reason: h.reason };
    const header = h.otherBuild === true ? { ...refused, otherBuild: true as const } : refused;
    return { header, stdout: '', stderr: '' };
  }
  if (h?.served !== true || !isCount(h.exit) || (h.exit as number) > 255)
    return 'a malformed reply header';
  if (!isCount(h.stdout) || !isCount(h.stderr)) return 'a malformed reply header';
  const [out, err] = [h.stdout as number, h.stderr as number];
  if (whole.length - at !== out + err) return 'a reply of the wrong length';
  const body = whole.subarray(at);
  return {
    header: { served: true, exit: h.exit as number, stdout: out, stderr: err },
    stdout: body.subarray(0, out).toString('utf8'),
    stderr: body.subarray(out).toString('utf8'),
  };
}
