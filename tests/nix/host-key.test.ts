// Host keys: Nix refuses what the TypeScript parser refuses without curve arithmetic (small-order
// points, non-canonical y >= p, bad base64, wrong SSH key types and blobs) with the same reason, and
// accepts valid keys (raw base64 and OpenSSH lines) as the same raw key.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { requireTool } from '../support/skip.ts';
import { parseHostKey, sshLineForKey } from '../../publisher/host-key.ts';
import { isValidPublicKey } from '../../protocol/ed25519.ts';
import { newSigningKey } from '../../protocol/keys.ts';
import { NIX_LIB, evalJson, nixSandbox, nixString } from './nix-env.ts';

test('Nix host-key parsing agrees with publisher/host-key.ts', async () => {
  if (!requireTool('nix-instantiate', 'Nix host-key parsing')) return;
  const sandbox = nixSandbox();
  try {
    const smallOrderHex = (await evalJson(
      sandbox,
      `(import ${nixString(`${NIX_LIB}/host-key.nix`)}).smallOrder`,
    )) as string[];
    for (const hex of smallOrderHex)
      assert.not.ok(
        isValidPublicKey(Buffer.from(hex, 'hex')),
        `${hex} is a valid key for TypeScript`,
      );
    // y >= p = 2^255 - 19: the 19 values of the top of the range, with and without the sign bit.
    const nonCanonical: Buffer[] = [];
    for (let low = 0xed; low <= 0xff; low++) {
      for (const top of [0x7f, 0xff])
        nonCanonical.push(Buffer.from([low, ...Array<number>(30).fill(0xff), top]));
    }
    const valid = Array.from({ length: 6 }, (_, i) =>
      Buffer.from(newSigningKey(`k${i}`).publicKey),
    );
    const texts = [
      ...smallOrderHex.map((h) => Buffer.from(h, 'hex').toString('base64')),
      ...nonCanonical.map((b) => b.toString('base64')),
      ...valid.map((b) => b.toString('base64')),
      ...valid.slice(0, 3).map((b, i) => sshLineForKey(b, i === 0 ? '' : `root@host-${i}`)),
      sshLineForKey(nonCanonical[0]!),
      'ssh-ed25519 ' + Buffer.from('not a blob').toString('base64'),
      'ssh-ed25519 @@@@',
      'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== me',
      randomBytes(31).toString('base64'),
      randomBytes(33).toString('base64'),
      valid[0]!.toString('base64').replace('=', 'A'),
      valid[0]!.toString('base64').slice(0, 42) + 'B=', // non-zero padding bits
    ];
    const nix = (await evalJson(
      sandbox,
      `map (import ${nixString(`${NIX_LIB}/host-key.nix`)}).parse (builtins.fromJSON ${nixString(JSON.stringify(texts))})`,
    )) as ({ ok: true; raw: string } | { ok: false; reason: string })[];
    texts.forEach((text, i) => {
      const ts = parseHostKey(text);
      const n = nix[i]!;
      if (ts.ok) {
        assert.ok(n.ok, `${text}: Nix refused a key TypeScript accepts`);
        if (n.ok) assert.is(n.raw, Buffer.from(ts.raw).toString('base64'), text);
      } else {
        assert.not.ok(n.ok, `${text}: Nix accepted a key TypeScript refuses (${ts.reason})`);
        if (!n.ok) assert.is(n.reason, ts.reason, text);
      }
    });
  } finally {
    sandbox.cleanup();
  }
});

test.run();
