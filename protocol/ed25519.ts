// Ed25519 with RFC 8032 strict verification. node:crypto (OpenSSL) does the arithmetic because it is ~10x
// faster than @noble/ed25519; we add the encoding checks that make OpenSSL agree with noble's
// `{ zip215: false }` mode on every edge case (tests/protocol/ed25519.test.ts cross-checks both):
// S must be canonical (S < L), public keys must be canonical and not small-order, R must be canonical
// and not the "x = 0 with the sign bit set" encoding.
// OpenSSL checks the cofactorless equation [S]B = R + [k]A; noble checks the cofactored one
// [8][S]B = [8]R + [8][k]A. They differ only when A or R carries a small-order component, which only
// the key holder can produce (e.g. R = identity). Cofactorless acceptance implies cofactored acceptance,
// so when OpenSSL refuses we ask noble: both verifiers then agree exactly, and valid signatures never
// pay for the slow path.
import {
  createPrivateKey,
  createPublicKey,
  sign as nodeSign,
  verify as nodeVerify,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { moduleBeside, startModuleThread } from './module-thread.ts';
import { ed25519PublicKeyObject } from './ed25519-public-key.ts';
import type { SignedChunk, SigningChunk, SigningWorkerData } from './ed25519-signing-worker.ts';
import * as noble from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';

noble.hashes.sha512 = sha512;

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

// Group order L, little-endian, for the S < L check.
const L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');

// Encodings of the 8 small-order points, plus their non-canonical variants (y >= p), as in the
// published edge-case vectors for Ed25519 verifiers. Keys or R values equal to these are refused.
const SMALL_ORDER = new Set([
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000080',
  '0000000000000000000000000000000000000000000000000000000000000000',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  '0100000000000000000000000000000000000000000000000000000000000080',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
]);

// Encodings with x = 0 and the sign bit set (identity and the order-2 point): noble's strict decoder
// refuses them, OpenSSL's does not.
const NEGATIVE_ZERO_X = new Set([
  '0100000000000000000000000000000000000000000000000000000000000080',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
]);

function lessThanL(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const a = s[i]!;
    const b = L[i]!;
    if (a < b) return true;
    if (a > b) return false;
  }
  return false;
}

/** y coordinate (with the sign bit cleared) must be < p = 2^255 - 19. */
function canonicalPoint(p: Uint8Array): boolean {
  if ((p[31]! & 0x7f) !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (p[i] !== 0xff) return true;
  return p[0]! < 0xed;
}

export interface Ed25519KeyPair {
  /** 32-byte RFC 8032 private key (seed). */
  seed: Uint8Array;
  publicKey: Uint8Array;
}

const publicKeyCache = new Map<string, KeyObject>();

function publicKeyObject(pub: Uint8Array): KeyObject {
  const hex = Buffer.from(pub).toString('hex');
  let k = publicKeyCache.get(hex);
  if (!k) {
    k = ed25519PublicKeyObject(pub);
    if (publicKeyCache.size > 100_000) publicKeyCache.clear();
    publicKeyCache.set(hex, k);
  }
  return k;
}

const privateKeyCache = new WeakMap<Uint8Array, KeyObject>();
function privateKeyObject(seed: Uint8Array): KeyObject {
  let k = privateKeyCache.get(seed);
  if (!k) {
    k = createPrivateKey({
      key: Buffer.concat([PKCS8_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    privateKeyCache.set(seed, k);
  }
  return k;
}

export function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  if (seed.length !== 32) throw new TypeError('Ed25519 seed must be 32 bytes');
  const spki = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
}

export function generateKeyPair(): Ed25519KeyPair {
  const seed = new Uint8Array(randomBytes(32));
  return { seed, publicKey: publicKeyFromSeed(seed) };
}

export function signBytes(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(nodeSign(null, message, privateKeyObject(seed)));
}

/** Signs many messages with one key on two threads, while the caller goes on building the next ones. */
export interface BatchSigner {
  /** Queues `message` (not to be changed until `finish` settles); its signature is at the same
   * position in `finish()`'s result. */
  add(message: Uint8Array): void;
  /** Every queued message's signature, in order (byte-identical to signBytes: Ed25519 is deterministic). */
  finish(): Promise<Uint8Array[]>;
  /** Stops the signing thread (finish does it too); for a caller that gives up before finish. */
  close(): void;
}

/**
 * Told of each run of signatures as soon as it exists, on the caller's thread: the messages from
 * position `first` on (in `add` order) have `signatures` (runs arrive in any order). What it throws
 * fails `finish`.
 */
export type OnBatchSigned = (first: number, signatures: readonly Uint8Array[]) => void;

/** The signing thread's module (protocol/ed25519-signing-worker.ts; its own entry in dist/). */
const SIGNING_MODULE = moduleBeside('ed25519-signing-worker', import.meta.url);

/** Messages per hand-over: ~10 ms of signing, small enough for the two threads to share the tail. */
const BATCH_CHUNK = 256;

/**
 * Ed25519 on a worker thread beside the caller's, fed chunks of messages: the worker holds at most two
 * chunks (one it signs, one queued) and the rest wait; each time it returns one it is handed the next
 * from the front, and in `finish` the caller signs waiting chunks from the back, in line, so the two
 * threads share the work whatever the load on either core (a chunk handed over cannot be taken back:
 * a deeper queue at a descheduled worker leaves the caller waiting at the end). A caller that builds
 * its messages in one synchronous run should yield to the event loop between chunks now and then, so
 * the worker's answers come in and it is handed the next chunk meanwhile.
 * Chosen over node:crypto's callback form (one libuv job per signature on a 4-thread pool), which cost
 * ~40% more CPU than signing in line for no shorter wall time on this 2-core machine
 * (docs/benchmarks.md "## publish"): a chunk costs one hand-over, not one per signature.
 * `onSigned` gets each chunk's signatures as they come, so the caller can use them (write the signed
 * files) on its thread while the worker signs on; work it does there is work it does not sign, and the
 * back-and-front sharing balances the two threads the same way.
 */
export function startBatchSigner(
  seed: Uint8Array,
  module: URL = SIGNING_MODULE,
  onSigned?: OnBatchSigned,
): BatchSigner {
  if (seed.length !== 32) throw new TypeError('Ed25519 seed must be 32 bytes');
  const data: SigningWorkerData = { pkcs8: Buffer.concat([PKCS8_PREFIX, seed]) };
  const worker = startModuleThread(module, data);
  const results: Uint8Array[][] = [];
  const waiting: { id: number; messages: Uint8Array[] }[] = [];
  let chunks = 0;
  let atWorker = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  let pending: Uint8Array[] = [];
  const toWorker = (id: number, messages: Uint8Array[]) => {
    const chunk = packChunk(id, messages);
    atWorker++;
    worker.postMessage(chunk, [chunk.bytes.buffer]);
  };
  const signed = (id: number, signatures: Uint8Array[]) => {
    results[id] = signatures;
    if (failure !== undefined || !onSigned) return;
    try {
      onSigned(id * BATCH_CHUNK, signatures);
    } catch (e) {
      failure = e;
    }
  };
  worker.on('message', ({ id, signatures }: SignedChunk) => {
    atWorker--;
    // One chunk in hand and one queued keeps the worker busy; deeper, and it would take chunks the
    // caller's thread could sign sooner. Handed over before onSigned runs, so the worker signs meanwhile.
    const next = atWorker < 2 && failure === undefined ? waiting.shift() : undefined;
    if (next) toWorker(next.id, next.messages);
    signed(id, splitSignatures(signatures));
    wake?.();
  });
  worker.on('error', (e) => {
    failure = e;
    wake?.();
  });
  worker.on('exit', (code) => {
    if (atWorker > 0) failure ??= new Error(`the Ed25519 signing thread exited (${code})`);
    wake?.();
  });
  const endChunk = () => {
    if (pending.length === 0) return;
    const id = chunks++;
    if (atWorker < 2) toWorker(id, pending);
    else waiting.push({ id, messages: pending });
    pending = [];
  };
  const close = () => void worker.terminate();
  return {
    add(message) {
      pending.push(message);
      if (pending.length >= BATCH_CHUNK) endChunk();
    },
    async finish() {
      endChunk();
      try {
        for (;;) {
          if (failure !== undefined) throw failure;
          const last = waiting.pop();
          if (last) {
            signed(last.id, signEach(seed, last.messages));
            // Let the worker's answers in (each hands it the next waiting chunk).
            await new Promise<void>((resolve) => setImmediate(resolve));
          } else if (atWorker > 0) await new Promise<void>((resolve) => (wake = resolve));
          else break;
        }
        return results.flat();
      } finally {
        close();
      }
    },
    close,
  };
}

/** A chunk as the signing thread takes it: the messages one after the other, and their lengths. */
function packChunk(
  id: number,
  messages: readonly Uint8Array[],
): SigningChunk & { bytes: Uint8Array<ArrayBuffer> } {
  const lengths = messages.map((m) => m.length);
  const bytes = new Uint8Array(lengths.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const m of messages) {
    bytes.set(m, at);
    at += m.length;
  }
  return { id, bytes, lengths };
}

/** signBytes of each message, in order (the caller's share of a batch). */
function signEach(seed: Uint8Array, messages: readonly Uint8Array[]): Uint8Array[] {
  return messages.map((m) => signBytes(seed, m));
}

/** The signing thread's answer cut into one 64-byte signature per message. */
function splitSignatures(signatures: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < signatures.length; at += 64) out.push(signatures.subarray(at, at + 64));
  return out;
}

/**
 * The encoding checks of strict verification (lengths, canonical A and R, A not small-order, S < L).
 * A signature passing them that OpenSSL accepts is valid under verifyBytes; batch verifiers rely on it.
 */
export function passesStrictEncodingChecks(publicKey: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  if (!canonicalPoint(publicKey) || SMALL_ORDER.has(Buffer.from(publicKey).toString('hex')))
    return false;
  const r = signature.subarray(0, 32);
  if (!canonicalPoint(r) || NEGATIVE_ZERO_X.has(Buffer.from(r).toString('hex'))) return false;
  return lessThanL(signature.subarray(32));
}

/** RFC 8032 strict verification. Never throws: any malformed input is simply "not valid". */
export function verifyBytes(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!passesStrictEncodingChecks(publicKey, signature)) return false;
  let ok: boolean;
  try {
    ok = nodeVerify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
  if (ok) return true;
  return cofactoredVerify(publicKey, message, signature);
}

function cofactoredVerify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    return noble.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * A public key is usable only if it is a canonical, non-small-order encoding of a point ON the curve.
 * OpenSSL imports any 32 bytes without decoding them (about half of random strings are not points), so
 * the point is decompressed with noble's strict decoder: a host key that is not a point could never
 * produce a valid ack, and its wave would stall forever.
 */
export function isValidPublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32 || !canonicalPoint(publicKey)) return false;
  if (SMALL_ORDER.has(Buffer.from(publicKey).toString('hex'))) return false;
  try {
    noble.Point.fromBytes(publicKey, false);
    return true;
  } catch {
    return false;
  }
}
