// Host public keys in the fleet may be written as base64 of the raw 32 bytes, or as the OpenSSH public key
// line of the host's SSH host key ("ssh-ed25519 AAAA... comment"), which is what operators have at hand.
// Everything downstream (manifests, plans, ack verification) uses the raw 32 bytes in base64.
import { isValidPublicKey } from '../protocol/index.ts';

const SSH_KEY_TYPE = 'ssh-ed25519';

/** `base64`: the raw key in base64, as manifests and plans carry it (computed once, with the check). */
export type HostKeyResult =
  { ok: true; raw: Uint8Array; base64: string } | { ok: false; reason: string };

function readSshString(buf: Buffer, offset: number): { value: Buffer; next: number } | undefined {
  if (offset + 4 > buf.length) return undefined;
  const len = buf.readUInt32BE(offset);
  const start = offset + 4;
  if (start + len > buf.length) return undefined;
  return { value: buf.subarray(start, start + len), next: start + len };
}

function decodeStrictBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, 'base64');
  // Node ignores non-zero padding bits; re-encoding catches texts that do not round-trip.
  return bytes.toString('base64') === text ? bytes : undefined;
}

type RawKey = { ok: true; raw: Uint8Array } | { ok: false; reason: string };

function parseSshLine(line: string): RawKey {
  const parts = line.trim().split(/\s+/);
  if (parts[0] !== SSH_KEY_TYPE)
    return { ok: false, reason: `only ${SSH_KEY_TYPE} keys are supported, got "${parts[0]}"` };
  const blob = parts[1] === undefined ? undefined : decodeStrictBase64(parts[1]);
  if (!blob) return { ok: false, reason: 'the ssh-ed25519 key data is not valid base64' };
  const type = readSshString(blob, 0);
  const key = type && readSshString(blob, type.next);
  if (!type || !key || type.value.toString('latin1') !== SSH_KEY_TYPE || key.next !== blob.length) {
    return {
      ok: false,
      reason: 'the ssh-ed25519 key data is not an OpenSSH ed25519 public key blob',
    };
  }
  if (key.value.length !== 32)
    return { ok: false, reason: `the ssh-ed25519 key is ${key.value.length} bytes, expected 32` };
  return { ok: true, raw: new Uint8Array(key.value) };
}

// Validation, the duplicate-key check and document building each look at every host key: remember the
// answer (a pure function of the text) instead of decoding and checking 10,000 keys three times.
const memo = new Map<string, HostKeyResult>();
const MEMO_LIMIT = 200_000;

// Raw keys (base64) already known to be valid curve points (publisher/vouched-keys.ts: the previous
// release carried them), so the point decompression is skipped for them. Only ever added to: validity
// is a property of the bytes.
const knownValid = new Set<string>();
/** The one base64 text of 32 bytes (no padding bits set): the only form knownValid holds. */
const CANONICAL_KEY32 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Records raw host keys (base64 of 32 bytes) as known-valid curve points; other texts are ignored. */
export function noteValidHostKeys(rawBase64Keys: Iterable<string>): void {
  for (const k of rawBase64Keys)
    if (knownValid.size < MEMO_LIMIT && CANONICAL_KEY32.test(k)) knownValid.add(k);
}

/** Parses and checks a host key (base64 raw 32 bytes, or an OpenSSH ssh-ed25519 line). Never throws. */
export function parseHostKey(text: string): HostKeyResult {
  const known = memo.get(text);
  if (known) return known;
  const result = parseHostKeyUncached(text);
  if (memo.size >= MEMO_LIMIT) memo.clear();
  memo.set(text, result);
  return result;
}

function parseHostKeyUncached(text: string): HostKeyResult {
  // A known-valid key given as its canonical base64 (how the previous release carried it): the set
  // holds only canonical encodings of 32 bytes, so decoding is all that is left to do.
  if (knownValid.has(text)) return knownKey(text);
  let result: RawKey;
  if (text.startsWith('ssh-')) result = parseSshLine(text);
  else {
    const raw = decodeStrictBase64(text);
    result =
      raw && raw.length === 32
        ? { ok: true, raw: new Uint8Array(raw) }
        : {
            ok: false,
            reason:
              'must be base64 of the raw 32-byte Ed25519 public key, or an OpenSSH "ssh-ed25519 AAAA..." line',
          };
  }
  if (!result.ok) return result;
  const base64 = Buffer.from(result.raw).toString('base64');
  if (!knownValid.has(base64) && !isValidPublicKey(result.raw))
    return {
      ok: false,
      reason: 'is not a valid Ed25519 public key (not a canonical, non-small-order curve point)',
    };
  return { ok: true, raw: result.raw, base64 };
}

/**
 * A known-valid key in its canonical base64: the raw bytes are decoded only if asked for (validation
 * and the documents need the base64 alone: 10,000 decodes and copies fewer in a vouched publish).
 */
function knownKey(base64: string): HostKeyResult {
  let raw: Uint8Array | undefined;
  return {
    ok: true,
    base64,
    get raw() {
      return (raw ??= new Uint8Array(Buffer.from(base64, 'base64')));
    },
  };
}

/** The OpenSSH public key line for a raw Ed25519 key (used by the fleet generator and tests). */
export function sshLineForKey(raw: Uint8Array, comment = ''): string {
  const typeBytes = Buffer.from(SSH_KEY_TYPE, 'latin1');
  const blob = Buffer.alloc(4 + typeBytes.length + 4 + raw.length);
  blob.writeUInt32BE(typeBytes.length, 0);
  typeBytes.copy(blob, 4);
  blob.writeUInt32BE(raw.length, 4 + typeBytes.length);
  Buffer.from(raw).copy(blob, 8 + typeBytes.length);
  return `${SSH_KEY_TYPE} ${blob.toString('base64')}${comment ? ' ' + comment : ''}`;
}
