// Reading a tree's many small files (a release's 10,000 host manifests) on two threads. Each file costs
// ~70 us of system calls (open, fstat, read, close) and the caller parses it after reading, so the
// reads were about half of the walk. A helper thread reads the files from the far end of the list
// while the caller reads and parses from the near end as before; the caller takes a file from the
// helper when it has arrived and reads it itself otherwise, and the helper stops where the caller has
// got to. Neither waits for the other: a helper that starts late, runs slowly on a busy machine or
// fails costs only the speed it would have added.
//
// The helper reads with readCappedFile, as the caller does (a regular file, capped before it is read).
// A file it could not read for any reason (missing, too large, not a regular file, unreadable) is left
// to the caller, whose own read then reports it exactly as it always did. The bytes are only bytes:
// whatever they are checked against (the digest the release index binds, the signatures) is checked
// by the caller, on the bytes it was handed, wherever they were read.
import { availableParallelism } from 'node:os';
import {
  MessageChannel,
  receiveMessageOnPort,
  type MessagePort,
  type Worker,
} from 'node:worker_threads';
import { readCappedFile } from './capped-file.ts';
import { moduleBeside, startModuleThread } from './module-thread.ts';

/** Below this many files a thread costs more to start than it spares. */
export const READ_AHEAD_MIN_FILES = 512;
/** Files per message from the helper: small enough to arrive often, large enough to cost little. */
const BATCH_FILES = 128;

/** The helper holds one batch at a time: a small heap keeps the process's peak RSS down. */
const HELPER_HEAP = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 };

/** Compiled beside this file in dist/ (scripts/build.mjs), or the source under tsx. */
const READ_AHEAD_MODULE = moduleBeside('read-ahead-worker', import.meta.url);

export interface ReadAheadRequest {
  /** Absolute paths, in the order the caller reads them. */
  files: string[];
  /** What readCappedFile names each file by. */
  labels: string[];
  maxBytes: number;
  /** Int32 [0]: the caller's next file; the helper reads only files from there on. */
  progress: SharedArrayBuffer;
  port: MessagePort;
}

/** One message of the helper: files [start, start + lengths.length), -1 = not read, left to the caller. */
interface ReadBatch {
  start: number;
  lengths: Int32Array;
  bytes: ArrayBuffer;
}

/** The helper's side: reads the files from the last back, a batch at a time, until it meets the caller. */
export function readFromTheEnd(req: ReadAheadRequest): void {
  const progress = new Int32Array(req.progress);
  let end = req.files.length;
  while (end > Atomics.load(progress, 0)) {
    const start = Math.max(end - BATCH_FILES, Atomics.load(progress, 0));
    const lengths = new Int32Array(end - start);
    const read: Buffer[] = [];
    for (let i = start; i < end; i++) {
      try {
        const b = readCappedFile(req.files[i]!, req.maxBytes, req.labels[i]!);
        read.push(b);
        lengths[i - start] = b.length;
      } catch {
        lengths[i - start] = -1;
      }
    }
    // A buffer of its own (Buffer.concat may hand out a slice of a shared pool): it is transferred.
    const bytes = new Uint8Array(read.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of read) at += (bytes.set(b, at), b.length);
    const batch: ReadBatch = { start, lengths, bytes: bytes.buffer };
    req.port.postMessage(batch, [bytes.buffer, lengths.buffer]);
    end = start;
  }
  req.port.close();
}

/** The caller's side of a read-ahead (startReadAhead). */
export class ReadAhead {
  private readonly position = new Map<string, number>();
  private readonly arrived: (Uint8Array | undefined)[];
  private readonly progress: Int32Array;
  private readonly exited: Promise<void>;

  constructor(
    labels: readonly string[],
    progress: SharedArrayBuffer,
    private readonly port: MessagePort,
    private readonly thread: Worker,
  ) {
    labels.forEach((l, i) => this.position.set(l, i));
    this.arrived = new Array<Uint8Array | undefined>(labels.length);
    this.progress = new Int32Array(progress);
    this.exited = new Promise((resolve) => thread.once('exit', () => resolve()));
  }

  /**
   * The bytes of `label` if the helper has read them (at most `maxBytes`), else undefined: the caller
   * reads the file itself, and the helper then leaves every file up to this one to the caller. Each
   * file is handed over once (asked again, the caller reads it).
   */
  take(label: string, maxBytes: number): Uint8Array | undefined {
    const i = this.position.get(label);
    if (i === undefined) return undefined;
    this.receive();
    const bytes = this.arrived[i];
    // Handed over once: a batch's memory goes as soon as the caller drops the bytes of its files.
    this.arrived[i] = undefined;
    if (bytes === undefined && i >= Atomics.load(this.progress, 0))
      Atomics.store(this.progress, 0, i + 1);
    return bytes !== undefined && bytes.byteLength <= maxBytes ? bytes : undefined;
  }

  /** Waits for the helper to end by itself (its last batch can then be taken), keeping the process up. */
  ended(): Promise<void> {
    this.thread.ref();
    return this.exited;
  }

  /** Ends the helper (the caller is done with these files). */
  stop(): void {
    Atomics.store(this.progress, 0, this.arrived.length);
    void this.thread.terminate();
    this.port.close();
  }

  private receive(): void {
    for (
      let m = receiveMessageOnPort(this.port);
      m !== undefined;
      m = receiveMessageOnPort(this.port)
    ) {
      const { start, lengths, bytes } = m.message as ReadBatch;
      let at = 0;
      for (let k = 0; k < lengths.length; k++) {
        const n = lengths[k]!;
        if (n < 0) continue;
        this.arrived[start + k] = new Uint8Array(bytes, at, n);
        at += n;
      }
    }
  }
}

/**
 * Starts reading `files` (absolute paths; `labels`: the names the caller asks for them by) ahead on a
 * helper thread; null when there are too few files to pay for a thread, or one core.
 */
export function startReadAhead(
  files: readonly string[],
  labels: readonly string[],
  maxBytes: number,
  opts: { module?: URL; always?: boolean } = {},
): ReadAhead | null {
  const pays = files.length >= READ_AHEAD_MIN_FILES && availableParallelism() > 1;
  if (files.length === 0 || (!pays && opts.always !== true)) return null;
  const module = opts.module ?? READ_AHEAD_MODULE;
  const progress = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const request: ReadAheadRequest = {
    files: [...files],
    labels: [...labels],
    maxBytes,
    progress,
    port: port2,
  };
  let thread: Worker;
  try {
    thread = startModuleThread(module, request, [port2], HELPER_HEAP);
  } catch (e) {
    warnFailed(module, e);
    return null;
  }
  // The helper never keeps the process alive; one that fails leaves every file to the caller.
  thread.unref();
  thread.once('error', (e) => warnFailed(module, e));
  return new ReadAhead(labels, progress, port1, thread);
}

/** A helper that fails says so, as a packaging bug would: it costs only speed. */
function warnFailed(module: URL, e: unknown): void {
  process.emitWarning(
    `read-ahead helper thread (${module.href}) failed, reading on one thread: ${(e as Error).message}`,
  );
}
