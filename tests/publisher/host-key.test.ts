import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseHostKey, sshLineForKey } from '../../publisher/host-key.ts';
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

test.run();
