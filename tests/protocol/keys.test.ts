import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync, chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import {
  newSigningKey,
  writePrivateKey,
  writePublicKey,
  readPrivateKey,
  readPublicKey,
  keyIdOf,
  KeyFileError,
  publicPart,
} from '../../protocol/keys.ts';
import { Malformed } from '../../protocol/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-keys-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('keyid is the hex SHA-256 of the raw public key', () => {
  const k = newSigningKey('release-1');
  assert.is(k.keyid, createHash('sha256').update(k.publicKey).digest('hex'));
  assert.is(keyIdOf(k.publicKey), k.keyid);
});

test('private key written 0600, public key alongside, both read back', () => {
  const k = newSigningKey('root-a');
  const priv = join(dir, 'root-a.key');
  const pub = join(dir, 'root-a.pub');
  writePrivateKey(priv, k);
  writePublicKey(pub, publicPart(k));
  assert.is(statSync(priv).mode & 0o777, 0o600);
  const back = readPrivateKey(priv);
  assert.equal(back.seed, k.seed);
  assert.is(back.keyid, k.keyid);
  assert.is(readPublicKey(pub).keyid, k.keyid);
  assert.is(readPublicKey(priv).keyid, k.keyid, 'a private key file also serves as a public key');
  assert.not.ok(readFileSync(pub, 'utf8').includes('seed'));
});

test('group-readable private key refused with a clear message', () => {
  const k = newSigningKey('loose');
  const priv = join(dir, 'loose.key');
  writePrivateKey(priv, k);
  chmodSync(priv, 0o640);
  try {
    readPrivateKey(priv);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, KeyFileError);
    assert.match(
      (e as Error).message,
      /accessible by group or others \(mode 640\); run: chmod 600/,
    );
  }
});

test('corrupted key files are refused', () => {
  const k = newSigningKey('corrupt');
  const priv = join(dir, 'corrupt.key');
  writePrivateKey(priv, k);
  const doc = JSON.parse(readFileSync(priv, 'utf8')) as Record<string, string>;
  // seed replaced by another valid-looking seed: public key no longer matches
  doc['seed'] = Buffer.alloc(32, 1).toString('base64');
  writeFileSync(priv, JSON.stringify(doc), { mode: 0o600 });
  assert.throws(
    () => readPrivateKey(priv),
    (e: Error) => e instanceof KeyFileError && /corrupted key file/.test(e.message),
  );
  writeFileSync(priv, '{"type":', { mode: 0o600 });
  assert.throws(
    () => readPrivateKey(priv),
    (e: Error) => e instanceof Malformed,
  );
  const pub = join(dir, 'corrupt.pub');
  writePublicKey(pub, publicPart(k));
  const pdoc = JSON.parse(readFileSync(pub, 'utf8')) as Record<string, string>;
  pdoc['keyid'] = '0'.repeat(64);
  writeFileSync(pub, JSON.stringify(pdoc));
  assert.throws(() => readPublicKey(pub), /keyid does not match/);
});

test('missing key file names the path', () => {
  assert.throws(() => readPrivateKey(join(dir, 'nope.key')), /nope\.key: cannot read private key/);
});

test.run();
