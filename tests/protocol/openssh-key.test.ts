// The agent's host key may be the host's OpenSSH ed25519 host key: keys made by the real ssh-keygen are
// read (unencrypted ed25519 only, mode checked like our own key files), and a fleet whose hostKey is the
// matching "ssh-ed25519 AAAA..." line publishes a release under which acks signed with it verify.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { KeyFileError, readPrivateKey, b64, SSH_HOST_KEY_NAME } from '../../protocol/keys.ts';
import { signAck, verifyAckSignature } from '../../protocol/acks.ts';
import { SCHEMA_VERSION, isoTime } from '../../protocol/schemas/common.ts';
import { parseHostKey } from '../../publisher/host-key.ts';
import { publishRelease } from '../../publisher/publish.ts';
import { generateFleet } from '../support/fleet-gen.ts';
import { setupTrust, T0 } from '../publisher/helpers.ts';

const hasSsh = requireTool('ssh-keygen', 'OpenSSH host keys made by the real ssh-keygen');
const dir = mkdtempSync(join(tmpdir(), 'nixfleet-openssh-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function keygen(name: string, args: string[]): string {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-f', path, '-C', 'root@web1', ...args], { stdio: 'ignore' });
  return path;
}

function refuses(path: string, re: RegExp): void {
  try {
    readPrivateKey(path);
    assert.unreachable(`${path} should be refused`);
  } catch (e) {
    assert.instance(e, KeyFileError);
    assert.ok((e as Error).message.startsWith(`${path}: `), 'the error names the file');
    assert.match((e as Error).message, re);
  }
}

test('an ssh-keygen ed25519 host key signs acks that verify under the fleet hostKey given as its ssh-ed25519 line', () => {
  if (!hasSsh) return;
  const keyFile = keygen('ssh_host_ed25519_key', ['-t', 'ed25519', '-N', '']);
  const key = readPrivateKey(keyFile);
  assert.is(key.name, SSH_HOST_KEY_NAME);
  const line = readFileSync(`${keyFile}.pub`, 'utf8').trim();
  const parsed = parseHostKey(line);
  assert.ok(parsed.ok);
  assert.equal(
    Buffer.from(parsed.ok ? parsed.raw : []),
    Buffer.from(key.publicKey),
    'ssh-keygen -y and our reader agree on the public key',
  );
  assert.is(
    execFileSync('ssh-keygen', ['-y', '-f', keyFile], { encoding: 'utf8' }).trim().split(' ')[1],
    line.split(' ')[1],
  );

  // Publish a fleet whose host-0001 hostKey is that line; verify an ack against the manifest's hostKey.
  const s = setupTrust();
  try {
    const { fleet } = generateFleet({ hosts: 3, channels: 1, wavesPerChannel: 1, seed: 'ssh' });
    const host = Object.keys(fleet.hosts)[0]!;
    fleet.hosts[host]!.hostKey = line;
    const r = publishRelease({
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      trustDir: s.trustDir,
      releaseKeys: [s.releaseKey],
      fleet,
      now: T0,
    });
    const manifest = JSON.parse(
      readFileSync(join(s.treeDir, `releases/${r.version}/hosts/${host}.json`), 'utf8'),
    ) as { signed: { hostKey: string } };
    assert.is(manifest.signed.hostKey, b64(key.publicKey));
    const ack = signAck(
      {
        type: 'ack',
        schemaVersion: SCHEMA_VERSION,
        fleet: fleet.fleet,
        host,
        seq: 1,
        prev: null,
        time: isoTime(T0),
        kind: 'heartbeat',
        releaseVersion: r.version,
        rolloutId: null,
        target: null,
        current: fleet.hosts[host]!.target,
        healthySince: null,
        probes: [],
        reason: null,
      },
      key,
    );
    verifyAckSignature(ack, host, manifest.signed.hostKey);
    const other = readPrivateKey(keygen('other_key', ['-t', 'ed25519', '-N', '']));
    assert.throws(() =>
      verifyAckSignature(signAck(ack.signed, other), host, manifest.signed.hostKey),
    );
  } finally {
    s.cleanup();
  }
});

test('refused with the file named: group/world-readable, encrypted, other key types, corrupted', () => {
  if (!hasSsh) return;
  const open = keygen('readable', ['-t', 'ed25519', '-N', '']);
  chmodSync(open, 0o644);
  refuses(open, /accessible by group or others/);
  refuses(
    keygen('encrypted', ['-t', 'ed25519', '-N', 'secret passphrase']),
    /encrypted \(cipher aes256-ctr, kdf bcrypt\)/,
  );
  refuses(keygen('ecdsa', ['-t', 'ecdsa', '-N', '']), /type ecdsa-sha2-nistp256; only ssh-ed25519/);
  refuses(keygen('rsa', ['-t', 'rsa', '-b', '2048', '-N', '']), /type ssh-rsa; only ssh-ed25519/);

  const good = keygen('to-corrupt', ['-t', 'ed25519', '-N', '']);
  const text = readFileSync(good, 'latin1');
  const lines = text.trim().split('\n');
  const blob = Buffer.from(lines.slice(1, -1).join(''), 'base64');
  const write = (name: string, b: Buffer) => {
    const p = join(dir, name);
    writeFileSync(
      p,
      `${lines[0]}\n${b.toString('base64').replace(/(.{70})/g, '$1\n')}\n${lines.at(-1)}\n`,
      { mode: 0o600 },
    );
    return p;
  };
  // The private section starts after the public key blob: find the check integers by their position.
  const magic = 15;
  let off = magic;
  const str = () => {
    const n = blob.readUInt32BE(off);
    off += 4 + n;
  };
  str();
  str();
  str();
  off += 4;
  str();
  off += 4; // cipher, kdf, kdfoptions, N, public key, private length
  const checkint = Buffer.from(blob);
  checkint[off] = checkint[off]! ^ 0xff;
  refuses(write('checkint', checkint), /check integers differ/);
  refuses(write('truncated', blob.subarray(0, blob.length - 20)), /runs past the end|ends before/);
  const seed = Buffer.from(blob);
  seed[off + 8 + 4 + 11 + 4 + 32 + 4] = seed[off + 8 + 4 + 11 + 4 + 32 + 4]! ^ 1; // first seed byte
  refuses(write('seed', seed), /does not match the seed/);
  const noEnd = join(dir, 'no-end');
  writeFileSync(noEnd, lines.slice(0, -1).join('\n'), { mode: 0o600 });
  refuses(noEnd, /missing "-----END OPENSSH PRIVATE KEY-----"/);
});

test.run();
