// Signing and threshold verification of envelopes over JCS canonical bytes.
import { canonicalBytes } from './canonical.ts';
import { signBytes, verifyBytes } from './ed25519.ts';
import { BadSignature, ThresholdNotMet, UnknownKey } from './errors.ts';
import { b64, unb64, type PublicKey, type SigningKey } from './keys.ts';
import type { SignedDocument, SignatureEntry } from './schemas/index.ts';

export function signDocument<T>(doc: T, keys: readonly SigningKey[]): SignedDocument<T> {
  const bytes = canonicalBytes(doc);
  const signatures: SignatureEntry[] = keys.map((k) => ({
    keyid: k.keyid,
    sig: b64(signBytes(k.seed, bytes)),
  }));
  return { signed: doc, signatures };
}

/** Serialized form written to the tree: the canonical bytes of the whole envelope. */
export function envelopeBytes(env: SignedDocument<unknown>): Buffer {
  return canonicalBytes(env);
}

export interface VerifyOptions {
  file: string;
  /** Keys allowed to sign, by keyid. */
  keys: ReadonlyMap<string, PublicKey>;
  threshold: number;
  /** Role name for messages ("release", "root v3", "host web-01"). */
  role: string;
  /**
   * The bytes of `signed` exactly as they appear in the file (see signedTextOf). Tried first: for a
   * file written canonically they ARE the canonical bytes, and re-canonicalising would cost as much as
   * parsing. Sound because a release key only ever signs canonical bytes, and canonical JSON parses to
   * exactly one document; on mismatch the canonical bytes of the parsed document are checked.
   */
  signedText?: Uint8Array;
}

/**
 * Locates `signed` inside an envelope file written as canonical JSON: the file must be exactly
 * `{"signatures":<canonical signatures>,"signed":<text>}`. Returns <text>, or undefined for any other layout.
 */
export function signedTextOf(
  file: Uint8Array,
  signatures: readonly SignatureEntry[],
): Uint8Array | undefined {
  const prefix = Buffer.from(
    `{"signatures":${canonicalBytes(signatures).toString('utf8')},"signed":`,
    'utf8',
  );
  if (file.byteLength < prefix.length + 2 || file[file.byteLength - 1] !== 0x7d) return undefined;
  if (!Buffer.from(file.buffer, file.byteOffset, prefix.length).equals(prefix)) return undefined;
  return file.subarray(prefix.length, file.byteLength - 1);
}

/**
 * Counts distinct valid signatures by allowed keys. A signature that claims an allowed key but does not
 * verify is an attack or corruption, and fails the document as BadSignature even if the threshold is met
 * otherwise. If no allowed key signed at all: UnknownKey. If some but too few: ThresholdNotMet.
 */
export function verifyEnvelope(
  env: { signed: unknown; signatures: readonly SignatureEntry[] },
  opts: VerifyOptions,
): string[] {
  let canonical: Uint8Array | undefined;
  const verifies = (publicKey: Uint8Array, sig: Uint8Array): boolean => {
    if (opts.signedText && verifyBytes(publicKey, opts.signedText, sig)) return true;
    canonical ??= canonicalBytes(env.signed);
    return verifyBytes(publicKey, canonical, sig);
  };
  const good = new Set<string>();
  const unknown: string[] = [];
  for (const s of env.signatures) {
    const key = opts.keys.get(s.keyid);
    if (!key) {
      unknown.push(s.keyid);
      continue;
    }
    if (!verifies(key.publicKey, unb64(s.sig))) {
      throw new BadSignature(
        opts.file,
        `signature by ${opts.role} key ${s.keyid.slice(0, 16)} does not verify`,
      );
    }
    good.add(s.keyid);
  }
  if (good.size === 0) {
    throw new UnknownKey(
      opts.file,
      `no signature by a valid ${opts.role} key (signed by ${unknown.map((k) => k.slice(0, 16)).join(', ') || 'nobody'})`,
    );
  }
  if (good.size < opts.threshold) {
    throw new ThresholdNotMet(
      opts.file,
      `${good.size} of the required ${opts.threshold} ${opts.role} signatures`,
    );
  }
  return [...good];
}
