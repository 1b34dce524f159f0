// Key files. Format (JSON, one object):
//   private: {"type":"nixfleet-ed25519-private-key","schemaVersion":1,"name":N,"keyid":K,"publicKey":B64,"seed":B64}
//   public:  {"type":"nixfleet-ed25519-public-key","schemaVersion":1,"name":N,"keyid":K,"publicKey":B64}
// keyid = hex SHA-256 of the raw 32-byte public key. Private key files are written 0600 and refused when
// readable by group or others, like ssh refuses an unprotected identity file.
// readPrivateKey also reads an unencrypted OpenSSH ed25519 private key ("-----BEGIN OPENSSH PRIVATE
// KEY-----", e.g. /etc/ssh/ssh_host_ed25519_key), so a host can sign its acks with its SSH host key.
import { statSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { sha256Hex } from './canonical.ts';
import { generateKeyPair, isValidPublicKey, publicKeyFromSeed } from './ed25519.ts';
import { parseStrictJson } from './strict-json.ts';
import { Base64Key32, KeyId, parseWith } from './schemas/index.ts';
import { writeFileAtomic } from './atomic-write.ts';

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
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'KeyFileError';
  }
}

const KeyName = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,64}$/, 'key names use letters, digits, . _ - (at most 64)');

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
  return (
    JSON.stringify(
      {
        type: 'nixfleet-ed25519-private-key',
        schemaVersion: 1,
        name: key.name,
        keyid: key.keyid,
        publicKey: b64(key.publicKey),
        seed: b64(key.seed),
      },
      null,
      2,
    ) + '\n'
  );
}

export function serializePublicKey(key: PublicKey): string {
  return (
    JSON.stringify(
      {
        type: 'nixfleet-ed25519-public-key',
        schemaVersion: 1,
        name: key.name,
        keyid: key.keyid,
        publicKey: b64(key.publicKey),
      },
      null,
      2,
    ) + '\n'
  );
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
    throw new KeyFileError(
      path,
      `private key file is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
  const bytes = readFileSync(path);
  if (bytes.subarray(0, OPENSSH_BEGIN.length).toString('latin1') === OPENSSH_BEGIN)
    return readOpenSshPrivateKey(path, bytes);
  const doc = parseWith(
    PrivateKeyFile,
    parseStrictJson(bytes, { file: path, maxBytes: 4096 }),
    path,
  );
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
  if (keyIdOf(publicKey) !== doc.keyid)
    throw new KeyFileError(path, 'keyid does not match the public key');
  return { name: doc.name, keyid: doc.keyid, publicKey };
}

// ---- OpenSSH private keys (PROTOCOL.key in the OpenSSH sources) -----------------------------------------
//   "openssh-key-v1\0" string ciphername string kdfname string kdfoptions uint32 N string publickey[N]
//   string private-section; unencrypted, the private section is
//   uint32 checkint uint32 checkint (equal) { string keytype string pub string priv(seed||pub) string comment }[N]
//   then padding 1, 2, 3, ... up to the cipher block size (8 for "none").
const OPENSSH_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const OPENSSH_END = '-----END OPENSSH PRIVATE KEY-----';
const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
/** An ed25519 OpenSSH key file is ~400 bytes; anything near this is not one. */
const OPENSSH_MAX_BYTES = 16 * 1024;
/** The name a key read from an OpenSSH file carries (its comment is free text, often user@host). */
export const SSH_HOST_KEY_NAME = 'ssh-host-key';

class SshReader {
  private offset = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly path: string,
    private readonly what: string,
  ) {}
  fail(message: string): never {
    throw new KeyFileError(this.path, `not a valid OpenSSH private key: ${message}`);
  }
  uint32(field: string): number {
    if (this.offset + 4 > this.buf.length) this.fail(`${this.what} ends before ${field}`);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  string(field: string): Buffer {
    const len = this.uint32(field);
    if (this.offset + len > this.buf.length)
      this.fail(`${field} runs past the end of ${this.what}`);
    const v = this.buf.subarray(this.offset, this.offset + len);
    this.offset += len;
    return v;
  }
  rest(): Buffer {
    return this.buf.subarray(this.offset);
  }
  skip(n: number): void {
    this.offset += n;
  }
}

function readOpenSshPrivateKey(path: string, bytes: Buffer): SigningKey {
  if (bytes.length > OPENSSH_MAX_BYTES)
    throw new KeyFileError(path, `OpenSSH key file larger than ${OPENSSH_MAX_BYTES} bytes`);
  const text = bytes.toString('latin1').trim();
  if (!text.endsWith(OPENSSH_END))
    throw new KeyFileError(path, `not a valid OpenSSH private key: missing "${OPENSSH_END}"`);
  const body = text
    .slice(OPENSSH_BEGIN.length, text.length - OPENSSH_END.length)
    .replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body))
    throw new KeyFileError(path, 'not a valid OpenSSH private key: the body is not base64');
  const blob = Buffer.from(body, 'base64');
  if (!blob.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC))
    throw new KeyFileError(path, 'not a valid OpenSSH private key: no "openssh-key-v1" header');
  const outer = new SshReader(blob, path, 'the key file');
  outer.skip(OPENSSH_MAGIC.length);
  const cipher = outer.string('ciphername').toString('latin1');
  const kdf = outer.string('kdfname').toString('latin1');
  outer.string('kdfoptions');
  if (cipher !== 'none' || kdf !== 'none') {
    throw new KeyFileError(
      path,
      `the OpenSSH key is encrypted (cipher ${cipher}, kdf ${kdf}); the agent needs ` +
        `an unencrypted key, like sshd's host keys (ssh-keygen -p -N "" -f ${path} ` +
        `removes a passphrase)`,
    );
  }
  const count = outer.uint32('the number of keys');
  if (count !== 1)
    throw new KeyFileError(path, `the OpenSSH key file holds ${count} keys, expected 1`);
  const publicBlob = new SshReader(outer.string('the public key'), path, 'the public key');
  const publicType = publicBlob.string('the public key type').toString('latin1');
  if (publicType !== 'ssh-ed25519')
    throw new KeyFileError(
      path,
      `the OpenSSH key is of type ${publicType}; only ssh-ed25519 keys can sign acks`,
    );
  const publicKey = publicBlob.string('the public key bytes');
  const privateSection = outer.string('the private section');
  if (outer.rest().length !== 0) outer.fail('trailing bytes after the private section');
  const priv = new SshReader(privateSection, path, 'the private section');
  if (priv.uint32('checkint 1') !== priv.uint32('checkint 2'))
    priv.fail('the two check integers differ (corrupted, or decrypted with a wrong passphrase)');
  const type = priv.string('the key type').toString('latin1');
  if (type !== 'ssh-ed25519')
    throw new KeyFileError(
      path,
      `the OpenSSH key is of type ${type}; only ssh-ed25519 keys can sign acks`,
    );
  const pub = priv.string('the public key bytes');
  const secret = priv.string('the private key bytes');
  priv.string('the comment');
  const padding = priv.rest();
  // Padding is 1, 2, 3, ... up to the 8-byte block: anything else means a truncated or altered file.
  if (
    privateSection.length % 8 !== 0 ||
    padding.length >= 8 ||
    !padding.every((b, i) => b === i + 1)
  )
    priv.fail('bad padding of the private section');
  if (publicKey.length !== 32 || !pub.equals(publicKey))
    priv.fail('the public key in the private section differs from the one in the header');
  if (secret.length !== 64 || !secret.subarray(32).equals(pub))
    priv.fail('the ed25519 private key is not seed || public key (64 bytes)');
  const key = signingKeyFromSeed(SSH_HOST_KEY_NAME, new Uint8Array(secret.subarray(0, 32)));
  if (!Buffer.from(key.publicKey).equals(pub))
    throw new KeyFileError(path, 'publicKey does not match the seed (corrupted key file)');
  return key;
}
