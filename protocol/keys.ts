// Key files. Format (JSON, one object):
//   private: {"type":"nixfleet-ed25519-private-key","schemaVersion":1,"name":N,"keyid":K,"publicKey":B64,"seed":B64}
//   public:  {"type":"nixfleet-ed25519-public-key","schemaVersion":1,"name":N,"keyid":K,"publicKey":B64}
// keyid = hex SHA-256 of the raw 32-byte public key. Private key files are written 0600 and refused when
// readable by group or others, like ssh refuses an unprotected identity file.
import { statSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { sha256Hex } from './canonical.ts';
import { generateKeyPair, isValidPublicKey, publicKeyFromSeed } from './ed25519.ts';
import { parseStrictJson } from './strict-json.ts';
import { Base64Key32, KeyId } from './schemas/common.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { parseWith } from './schemas/parse.ts';

export interface SigningKey {
  name: string;
  keyid: string;
  publicKey: Uint8Array;
  seed: Uint8Array;
}

export interface PublicKey {
  name: string;
  keyid: string;
  publicKey: Uint8Array;
}

export class KeyFileError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'KeyFileError';
  }
}

const KeyName = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'key names use letters, digits, . _ - (at most 64)');

export const PrivateKeyFile = z.strictObject({
  type: z.literal('nixfleet-ed25519-private-key'),
  schemaVersion: z.literal(1),
  name: KeyName,
  keyid: KeyId,
  publicKey: Base64Key32,
  seed: Base64Key32,
});

export const PublicKeyFile = z.strictObject({
  type: z.literal('nixfleet-ed25519-public-key'),
  schemaVersion: z.literal(1),
  name: KeyName,
  keyid: KeyId,
  publicKey: Base64Key32,
});

export function keyIdOf(publicKey: Uint8Array): string {
  return sha256Hex(publicKey);
}

export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

export function unb64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'));
}

export function newSigningKey(name: string): SigningKey {
  KeyName.parse(name);
  const { seed, publicKey } = generateKeyPair();
  return { name, keyid: keyIdOf(publicKey), publicKey, seed };
}

export function signingKeyFromSeed(name: string, seed: Uint8Array): SigningKey {
  const publicKey = publicKeyFromSeed(seed);
  return { name, keyid: keyIdOf(publicKey), publicKey, seed };
}

export function publicPart(key: SigningKey | PublicKey): PublicKey {
  return { name: key.name, keyid: key.keyid, publicKey: key.publicKey };
}

export function serializePrivateKey(key: SigningKey): string {
  return JSON.stringify(
    { type: 'nixfleet-ed25519-private-key', schemaVersion: 1, name: key.name, keyid: key.keyid, publicKey: b64(key.publicKey), seed: b64(key.seed) },
    null,
    2,
  ) + '\n';
}

export function serializePublicKey(key: PublicKey): string {
  return JSON.stringify({ type: 'nixfleet-ed25519-public-key', schemaVersion: 1, name: key.name, keyid: key.keyid, publicKey: b64(key.publicKey) }, null, 2) + '\n';
}

export function writePrivateKey(path: string, key: SigningKey): void {
  writeFileAtomic(path, serializePrivateKey(key), { mode: 0o600 });
}

export function writePublicKey(path: string, key: PublicKey): void {
  writeFileAtomic(path, serializePublicKey(key), { mode: 0o644 });
}

export function readPrivateKey(path: string): SigningKey {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new KeyFileError(path, `cannot read private key: ${(e as Error).message}`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new KeyFileError(path, `private key file is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
  }
  const doc = parseWith(PrivateKeyFile, parseStrictJson(readFileSync(path), { file: path, maxBytes: 4096 }), path);
  const seed = unb64(doc.seed);
  const key = signingKeyFromSeed(doc.name, seed);
  if (b64(key.publicKey) !== doc.publicKey || key.keyid !== doc.keyid) {
    throw new KeyFileError(path, 'publicKey/keyid do not match the seed (corrupted key file)');
  }
  return key;
}

export function readPublicKey(path: string): PublicKey {
  let raw;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new KeyFileError(path, `cannot read public key: ${(e as Error).message}`);
  }
  const json = parseStrictJson(raw, { file: path, maxBytes: 4096 }) as { type?: unknown };
  // A private key file also carries the public half; accept it where only the public key is needed.
  if (json && json.type === 'nixfleet-ed25519-private-key') {
    const k = readPrivateKey(path);
    return publicPart(k);
  }
  const doc = parseWith(PublicKeyFile, json, path);
  const publicKey = unb64(doc.publicKey);
  if (!isValidPublicKey(publicKey)) throw new KeyFileError(path, 'not a valid Ed25519 public key');
  if (keyIdOf(publicKey) !== doc.keyid) throw new KeyFileError(path, 'keyid does not match the public key');
  return { name: doc.name, keyid: doc.keyid, publicKey };
}
