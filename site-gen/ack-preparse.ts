// A truly cold dashboard build takes in every ack of the log (strict JSON + schema, ~24,000 at 10,000
// hosts) after walking the release, on one core. That intake depends only on the bytes, not on the
// release, so a helper thread does it while the main thread walks the release and hands back the
// digests of the acks that passed (AckCache.primeTakenIn: the main thread then only decodes those, as it
// does acks an earlier run took in; handing back the digests, not the acks, keeps the copy between the
// threads small). The claims are still checked on the main thread against the verified release.
//
// The thread then establishes the signatures of those acks by each host's chain (verifyByChainTips:
// ~10,000 Ed25519 checks, one per tip), under the host keys the tree's channel plans name, read
// unchecked: a guess of the keys the verified release will name. The main thread counts an ack
// established there only under the key the verified release names for its host (a signature check is
// a pure function of the bytes and the key, so the guess can only cost speed, never admit an ack), and
// takes chunks of the tips' batch itself when it gets there (joinBatch) instead of waiting.
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import {
  MessageChannel,
  receiveMessageOnPort,
  type MessagePort,
  type Worker,
} from 'node:worker_threads';
import {
  ackSignatureJob,
  keyIdOf,
  LIMITS,
  listAckLogSegments,
  moduleBeside,
  parseAckLog,
  readAck,
  readCappedFile,
  servedRoot,
  startModuleThread,
  TIMESTAMP_PATH,
  prepareBatch,
  runBatch,
  startHelper,
  unb64,
  useHelperThread,
  type PreparedBatch,
  type SignatureJob,
  type SignedAck,
} from '../protocol/index.ts';

/** Below this many bytes of log (~1,200 acks) a thread costs more to start than it spares. */
export const PREPARSE_MIN_BYTES = 1024 * 1024;

/** Compiled beside this file in dist/ (scripts/build.mjs), or the source under tsx. */
const PREPARSE_MODULE = moduleBeside('ack-preparse-worker', import.meta.url);

export interface PreparseRequest {
  /** The log's segment files, oldest first (protocol listAckLogSegments). */
  segments: string[];
  /** The build reads the newest this many bytes; whole segments within it are taken in here. */
  windowBytes: number;
  /** Establish the signatures too, with the host keys of this tree's plans (ChainRequest). */
  chains?: ChainRequest;
}

/** The digests of the records whose acks passed the strict intake. */
export type Preparsed = string[];

/** What a record taken in keeps for its signature job: its bytes as text, its host, its envelope. */
export interface TakenAck {
  digest: string;
  canonical: string;
  host: string;
  prev: string | null;
  signatures: SignedAck['signatures'];
}

/**
 * The strict intake of the records of the newest whole segments within `windowBytes`: every ack that
 * passes, by its record's digest (the SHA-256 of the record's bytes, parseAckLog checked). Anything
 * else (a corrupt segment, a refused ack, a record whose decoding replaced bytes) is left to the
 * build's own intake, which reports it. `taken` receives what the signature jobs need of each.
 */
export function takeInLogRecords(req: PreparseRequest, taken?: TakenAck[]): Preparsed {
  const out: Preparsed = [];
  let left = req.windowBytes;
  for (const file of [...req.segments].reverse()) {
    try {
      // A segment larger than what is left of the window is read by its tail only: not here.
      if (statSync(file).size > left) break;
      const bytes = readFileSync(file);
      left -= bytes.length;
      for (const r of parseAckLog(bytes, file).records) {
        // Such a record is taken in under its bytes' own digest (AckCollector.addLogRecord).
        if (r.canonical.includes('\uFFFD')) continue;
        let ack: SignedAck;
        try {
          ack = readAck(Buffer.from(r.canonical, 'utf8'), file);
        } catch {
          continue; // Refused: the build's intake refuses it again, naming the record.
        }
        out.push(r.digest);
        const { host, prev } = ack.signed;
        taken?.push({
          digest: r.digest,
          canonical: r.canonical,
          host,
          prev,
          signatures: ack.signatures,
        });
      }
    } catch {
      break;
    }
  }
  return out;
}

/**
 * Host -> base64 key as the tree's current channel plans name them, read without any check (the
 * signatures are the main thread's walk's): a guess of the keys the verified release will name.
 * Anything unexpected gives no keys, and the build then checks every signature itself.
 */
export function plannedHostKeys(treeDir: string): Map<string, string> {
  const keys = new Map<string, string>();
  try {
    const root = servedRoot(treeDir);
    if (root === null) return keys;
    const signedOf = (path: unknown, maxBytes: number): Record<string, unknown> => {
      // Only a plain path below the tree: these names are not checked yet.
      if (
        typeof path !== 'string' ||
        !/^[\w.-]+(\/[\w.-]+)*$/.test(path) ||
        /(^|\/)\.\.?(\/|$)/.test(path)
      )
        throw new Error(`unexpected path ${JSON.stringify(path)}`);
      const doc = JSON.parse(readCappedFile(join(root, path), maxBytes, path).toString('utf8'));
      return doc.signed as Record<string, unknown>;
    };
    const ts = signedOf(TIMESTAMP_PATH, LIMITS.timestamp) as {
      release: { index: { path: unknown } };
    };
    const index = signedOf(ts.release.index.path, LIMITS.releaseIndex);
    for (const c of Object.values(
      index['channels'] as Record<string, { plan: { path: unknown } }>,
    )) {
      const hosts = signedOf(c.plan.path, LIMITS.channelPlan)['hosts'] as Record<string, unknown>;
      for (const host in hosts) {
        const key = (hosts[host] as { hostKey?: unknown }).hostKey;
        if (typeof key === 'string') keys.set(host, key);
      }
    }
  } catch {
    keys.clear();
  }
  return keys;
}

/** The chain tips' batch the thread prepares for the main thread (prepareTips). */
export interface TipBatch {
  prepared: PreparedBatch;
  /** Per job of `prepared`: the tip's digest, and the index in `keys` of the key it is checked under. */
  ids: string[];
  keyAt: Int32Array;
  keys: string[];
}

/**
 * The signature jobs of the chain tips among the taken acks (the acks no other taken ack names as
 * `prev`: the tips verifyByChainTips finds, when each host signs with one key), each under the key
 * `keys` names for its host, in a batch ready to verify; null when there is none. An ack whose host has
 * no key here, or whose signature names another key id, is left to the build, as is every ack behind a
 * tip: the build walks the chains back from the tips it is given (ChainedSignatureJob.established).
 */
export function prepareTips(
  taken: readonly TakenAck[],
  keys: ReadonlyMap<string, string>,
): TipBatch | null {
  const named = new Set<string>();
  for (const t of taken) if (t.prev !== null) named.add(t.prev);
  const keyList: string[] = [];
  const keyIds = new Map<string, { at: number; keyid: string; publicKey: Uint8Array }>();
  const tips: SignatureJob[] = [];
  const ids: string[] = [];
  const keyAt: number[] = [];
  for (const t of taken) {
    const hostKey = keys.get(t.host);
    if (named.has(t.digest) || hostKey === undefined) continue;
    let key = keyIds.get(hostKey);
    if (key === undefined) {
      const publicKey = unb64(hostKey);
      key = { at: keyList.push(hostKey) - 1, keyid: keyIdOf(publicKey), publicKey };
      keyIds.set(hostKey, key);
    }
    const ack = { signatures: t.signatures, signed: { prev: t.prev } };
    const job = ackSignatureJob(ack, t.digest, () => Buffer.from(t.canonical, 'utf8'), key);
    const message = job === null ? undefined : (job.message as () => Uint8Array | undefined)();
    if (job === null || message === undefined) continue;
    tips.push({ publicKey: job.publicKey, message, signature: job.signature });
    ids.push(t.digest);
    keyAt.push(key.at);
  }
  if (tips.length === 0) return null;
  return { prepared: prepareBatch(tips), ids, keyAt: Int32Array.from(keyAt), keys: keyList };
}

/** Where the thread stands with the tips' batch (ChainRequest.state[0]). */
const TIPS = { working: 0, posted: 1, none: 2, declined: 3 } as const;

/**
 * The thread's link to the main thread for the chain tips: `state` on shared memory ([0]: TIPS), and
 * the port the thread posts its TipBatch on (before it says `posted`).
 */
export interface ChainRequest {
  treeDir: string;
  state: Int32Array;
  port: MessagePort;
}

/**
 * The helper thread's whole work (ack-preparse-worker.ts): the intake; then, if asked, the chain
 * tips' batch under the keys of the tree's plans. The thread then ends: the batch is verified by the
 * main thread and a helper of its own (startTips), so this thread's heap is not kept.
 */
export function preparseMain(req: PreparseRequest, post: (digests: Preparsed) => void): void {
  const taken: TakenAck[] = [];
  post(takeInLogRecords(req, req.chains ? taken : undefined));
  const link = req.chains;
  if (link === undefined || Atomics.load(link.state, 0) !== TIPS.working) return;
  let tips: TipBatch | null = null;
  try {
    const keys = plannedHostKeys(link.treeDir);
    if (keys.size > 0) tips = prepareTips(taken, keys);
  } catch {
    tips = null; // Only speed is lost: the build checks those signatures itself.
  }
  if (tips !== null) link.port.postMessage(tips);
  Atomics.compareExchange(link.state, 0, TIPS.working, tips === null ? TIPS.none : TIPS.posted);
}

/**
 * The main thread's side: the thread's TipBatch once posted; with `final` (the build is about to
 * check its signatures), a batch not posted yet is declined, and the build checks those itself.
 */
function takeTips(link: ChainRequest, final: boolean): TipBatch | null {
  const state = final
    ? Atomics.compareExchange(link.state, 0, TIPS.working, TIPS.declined)
    : Atomics.load(link.state, 0);
  if (state !== TIPS.posted) return null;
  return (receiveMessageOnPort(link.port)?.message as TipBatch | undefined) ?? null;
}

/** (digest -> host key) of the tips whose signature `accepted` holds for. */
function acceptedTips(tips: TipBatch, accepted: readonly boolean[]): Map<string, string> {
  const pairs = new Map<string, string>();
  accepted.forEach((ok, i) => {
    if (ok) pairs.set(tips.ids[i]!, tips.keys[tips.keyAt[i]!]!);
  });
  return pairs;
}

/** A running intake (startAckPreparse). */
export interface AckPreparse {
  /** The digests of the records that passed, once the thread answers. Never rejects. */
  digests(): Promise<Preparsed>;
  /**
   * After digests(): when the thread's chain tips' batch is ready, a helper thread starts verifying
   * it (while the caller takes the acks in). Whether that batch is now being verified.
   */
  startTips(): boolean;
  /**
   * (digest -> host key) of the chain tips whose signatures the batch accepted, once it is done: this
   * thread takes the chunks left (blocks). None without `chainsOf`, or when the batch was not ready.
   */
  establishedTips(): ReadonlyMap<string, string>;
  /** Ends the threads (a build that failed before its ack intake, or is done with it). */
  stop(): void;
}

/**
 * Starts the intake of `logFile`'s records on a helper thread; null when the log is too small to pay
 * for a thread or there is one core, unless `always`. `chainsOf`: the tree whose plans name the keys
 * to prepare the chain tips' batch under (a build that verifies by chain tips). A helper that fails
 * only costs speed (the build takes every ack in itself, given no digests, and checks every
 * signature), but it says so on stderr, as a packaging bug would.
 */
export function startAckPreparse(
  logFile: string,
  windowBytes: number,
  opts: { module?: URL; always?: boolean; chainsOf?: string } = {},
): AckPreparse | null {
  const segments = listAckLogSegments(logFile).map((s) => s.file);
  let bytes = 0;
  for (const file of segments) bytes += statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  const pays = bytes >= PREPARSE_MIN_BYTES && availableParallelism() > 1;
  if (segments.length === 0 || (!pays && opts.always !== true)) return null;
  const module = opts.module ?? PREPARSE_MODULE;
  const channel = opts.chainsOf === undefined ? null : new MessageChannel();
  const link: ChainRequest | null =
    channel === null
      ? null
      : {
          treeDir: opts.chainsOf!,
          state: new Int32Array(new SharedArrayBuffer(4)),
          port: channel.port1,
        };
  let helper: Worker | undefined;
  const result = new Promise<Preparsed>((resolve) => {
    const failed = (e: unknown) => {
      process.emitWarning(
        `ack intake helper thread (${module.href}) failed, taking acks in on one thread: ${(e as Error).message}`,
      );
      resolve([]);
    };
    try {
      const chains = link === null ? {} : { chains: { ...link, port: channel!.port2 } };
      const request: PreparseRequest = { segments, windowBytes, ...chains };
      const thread = startModuleThread(module, request, {
        ...(link === null ? {} : { transferList: [channel!.port2] }),
      });
      helper = thread;
      thread.once('message', (m: Preparsed) => {
        resolve(m);
        // Preparing the tips, it ends by itself; it must not keep the process alive meanwhile.
        if (link === null) void thread.terminate();
        else thread.unref();
      });
      thread.once('error', failed);
      thread.once('exit', () => resolve([]));
    } catch (e) {
      failed(e);
    }
  });
  let tips: { batch: TipBatch; verifier: Worker | undefined } | null = null;
  const take = (final: boolean): boolean => {
    const batch = link === null || tips !== null ? null : takeTips(link, final);
    if (batch !== null) {
      const n = batch.prepared.batch.status.length;
      tips = {
        batch,
        verifier: useHelperThread(n) ? startHelper(batch.prepared.batch) : undefined,
      };
    }
    return tips !== null;
  };
  const stop = () => {
    void helper?.terminate();
    void tips?.verifier?.terminate();
    channel?.port1.close();
  };
  return {
    digests: () => result,
    startTips: () => take(false),
    establishedTips: () => {
      take(true);
      const running = tips;
      const pairs =
        running === null
          ? new Map<string, string>()
          : acceptedTips(running.batch, runBatch(running.batch.prepared, running.verifier));
      stop();
      return pairs;
    },
    stop,
  };
}
