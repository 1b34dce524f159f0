import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { noteValidHostKeys, parseHostKey, sshLineForKey } from '../../publisher/host-key.ts';
import { hostKeyFor } from '../support/fleet-gen.ts';
import { b64 } from '../../protocol/keys.ts';

const key = hostKeyFor('seed', 'web-01');

test('accepts base64 raw keys and OpenSSH lines, yielding the same 32 bytes', () => {
  const a = parseHostKey(b64(key.publicKey));
  const b = parseHostKey(sshLineForKey(key.publicKey, 'root@web-01'));
  assert.ok(a.ok && b.ok);
  if (a.ok && b.ok) assert.equal(Buffer.from(a.raw), Buffer.from(b.raw));
});

test('refuses other SSH key types, truncated blobs, wrong lengths and small-order points', () => {
  const cases: [string, RegExp][] = [
    ['ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ==', /only ssh-ed25519/],
    ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==', /not an OpenSSH ed25519 public key blob/],
    ['ssh-ed25519 !!!', /not valid base64/],
    [b64(new Uint8Array(31)), /raw 32-byte/],
    [b64(new Uint8Array(32)), /not a valid Ed25519 public key/],
    [sshLineForKey(new Uint8Array(32)), /not a valid Ed25519 public key/],
  ];
  for (const [text, re] of cases) {
    const r = parseHostKey(text);
    assert.ok(!r.ok, text);
    if (!r.ok) assert.match(r.reason, re);
  }
});

test('a vouched key is taken by its canonical base64 only: another spelling of it is checked in full', () => {
  // 32 bytes whose base64 ends in a character that leaves padding bits set when written differently.
  const raw = hostKeyFor('seed', 'vouched-spelling').publicKey;
  const canonical = b64(raw);
  const last = canonical.at(-2)!;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  // Same decoded bytes (Node ignores the padding bits), not the canonical text.
  const other = canonical.slice(0, -2) + alphabet[alphabet.indexOf(last) + 1] + '=';
  assert.equal(Buffer.from(other, 'base64'), Buffer.from(raw));
  noteValidHostKeys([canonical, other]);
  const a = parseHostKey(canonical);
  assert.ok(a.ok);
  if (a.ok) assert.equal(Buffer.from(a.raw), Buffer.from(raw));
  const b = parseHostKey(other);
  assert.ok(!b.ok, 'a non-canonical spelling is refused, vouched bytes or not');
});

test.run();
