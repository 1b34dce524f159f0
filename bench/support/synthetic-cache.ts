// A file:// binary cache of N narinfos signed in Node with a Nix-format key, for the cache-check benchmark
// (real `nix copy` of 10,000 paths would take minutes and measure Nix's NAR writing, not the check).
// Each target references one shared "dependency" path, as system closures share most of their paths.
// Nix itself accepts these narinfos (the benchmark runs `nix store verify` over the same cache).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signBytes, publicKeyFromSeed } from '../../protocol/ed25519.ts';
import { narinfoFingerprint, type NarInfo } from '../../publisher/cache-check.ts';

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** Nix's base-32 (its own alphabet and bit order), as in hash.cc printHash32. */
export function nix32(bytes: Uint8Array): string {
  const len = Math.ceil((bytes.length * 8) / 5);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    const c = (bytes[i]! >> j) | (i >= bytes.length - 1 ? 0 : bytes[i + 1]! << (8 - j));
    out += NIX32[c & 0x1f];
  }
  return out;
}

function digest(label: string, size: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(label).digest().subarray(0, size));
}

export interface NixKeyPair {
  secret: string;
  public: string;
  name: string;
  seed: Uint8Array;
}

export function nixKeyFromLabel(name: string): NixKeyPair {
  const seed = digest(`nix-key/${name}`, 32);
  const pub = publicKeyFromSeed(seed);
  return {
    name,
    seed,
    secret: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`,
    public: `${name}:${Buffer.from(pub).toString('base64')}`,
  };
}

export function storePathFor(label: string): string {
  return `/nix/store/${nix32(digest(`path/${label}`, 20))}-${label}`;
}

function narinfoText(info: NarInfo, key: NixKeyPair): string {
  const sig = Buffer.from(signBytes(key.seed, Buffer.from(narinfoFingerprint(info)))).toString(
    'base64',
  );
  const fileHash = nix32(digest(`file/${info.storePath}`, 32));
  return [
    `StorePath: ${info.storePath}`,
    `URL: nar/${fileHash}.nar.xz`,
    'Compression: xz',
    `FileHash: sha256:${fileHash}`,
    `FileSize: ${info.narSize}`,
    `NarHash: ${info.narHash}`,
    `NarSize: ${info.narSize}`,
    `References: ${info.references.join(' ')}`,
    `Sig: ${key.name}:${sig}`,
    '',
  ].join('\n');
}

/** Writes DIR/nix-cache-info and one narinfo per target plus the shared dependency; returns the targets. */
export function writeSyntheticCache(dir: string, targets: number, key: NixKeyPair): string[] {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'nix-cache-info'),
    'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n',
  );
  const dep = storePathFor('bench-shared-dep');
  const write = (storePath: string, references: string[]) => {
    const info: NarInfo = {
      storePath,
      narHash: `sha256:${nix32(digest(`nar/${storePath}`, 32))}`,
      narSize: 1024,
      references,
      sigs: [],
    };
    const base = storePath.slice('/nix/store/'.length);
    writeFileSync(join(dir, `${base.slice(0, 32)}.narinfo`), narinfoText(info, key));
  };
  write(dep, []);
  const paths: string[] = [];
  for (let i = 0; i < targets; i++) {
    const p = storePathFor(`nixos-system-host-${String(i).padStart(5, '0')}`);
    write(p, [dep.slice('/nix/store/'.length)]);
    paths.push(p);
  }
  return paths;
}
