// Deterministic generated fleets for tests and benchmarks. Same options -> the same fleet JSON and the
// same host signing keys (seed bytes = sha256(seed + "/" + host)), so agents in tests can sign acks.
import { createHash } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { keyIdOf, b64, type SigningKey } from '../../protocol/keys.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';

export interface GenerateFleetOptions {
  hosts: number;
  /** Number of channels (named ch-0, ch-1, ...) or explicit channel names. Hosts are dealt round-robin. */
  channels: number | string[];
  wavesPerChannel: number;
  seed: string;
  fleetName?: string;
  /** Chain the channels with channel edges (ch-0 before ch-1 before ...). Default false. */
  chainChannels?: boolean;
  /** Add one disruption budget over the whole fleet with this maxInFlightPct. */
  budgetPct?: number;
  /** Soak time of every wave. Default 60. */
  soakSeconds?: number;
}

export interface GeneratedFleet {
  fleet: FleetInput;
  /** Host name -> the host's signing key (its public half is the fleet's hostKey). */
  hostKeys: Record<string, SigningKey>;
}

const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** A syntactically valid store path: 32 Nix-base32 characters derived from the label. */
export function fakeStorePath(label: string, name: string): string {
  const h = Buffer.concat([sha256(label), sha256(label + '#')]);
  let hash = '';
  for (let i = 0; i < 32; i++) hash += NIX_BASE32[h[i]! % 32];
  return `/nix/store/${hash}-${name}`;
}

// noble derives a public key ~3x faster than node:crypto's PKCS#8 import, which matters for 10k-host fleets.
ed.hashes.sha512 = sha512;

export function hostKeyFor(seed: string, host: string): SigningKey {
  const secret = new Uint8Array(sha256(`${seed}/${host}`));
  const publicKey = ed.getPublicKey(secret);
  return { name: host, keyid: keyIdOf(publicKey), publicKey, seed: secret };
}

export function hostName(i: number, total: number): string {
  return `host-${String(i).padStart(Math.max(3, String(total - 1).length), '0')}`;
}

const ROLES = ['web', 'db', 'cache', 'worker'] as const;

/** Wave w of n: small first waves doubling in size, the last wave takes the remainder. */
function waveShape(w: number, n: number): { percent?: number } {
  if (w === n - 1) return {};
  return { percent: Math.max(1, Math.floor(100 / 2 ** (n - w))) };
}

export function generateFleet(opts: GenerateFleetOptions): GeneratedFleet {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 0)
    throw new RangeError('hosts must be a non-negative integer');
  if (!Number.isInteger(opts.wavesPerChannel) || opts.wavesPerChannel < 1)
    throw new RangeError('wavesPerChannel must be >= 1');
  const channelNames =
    typeof opts.channels === 'number'
      ? Array.from({ length: opts.channels }, (_, i) => `ch-${i}`)
      : opts.channels;
  if (channelNames.length < 1) throw new RangeError('at least one channel');
  const soakSeconds = opts.soakSeconds ?? 60;

  const hosts: FleetInput['hosts'] = {};
  const hostKeys: Record<string, SigningKey> = {};
  for (let i = 0; i < opts.hosts; i++) {
    const name = hostName(i, opts.hosts);
    const key = hostKeyFor(opts.seed, name);
    const h = sha256(`${opts.seed}/${name}/meta`);
    hostKeys[name] = key;
    hosts[name] = {
      system: 'x86_64-linux',
      tags: [`role-${ROLES[h[0]! % ROLES.length]}`, `rack-${h[1]! % 8}`],
      channel: channelNames[i % channelNames.length]!,
      target: fakeStorePath(`${opts.seed}/${name}/target`, `nixos-system-${name}`),
      hostKey: b64(key.publicKey),
      machineId: h.subarray(16, 32).toString('hex'),
    };
  }

  const n = opts.wavesPerChannel;
  const policies: FleetInput['policies'] = {
    rollout: {
      strategy: n === 1 ? 'all-at-once' : 'staged',
      waves: Array.from({ length: n }, (_, w) => ({
        ...waveShape(w, n),
        soakSeconds,
        failureThreshold: { count: 0 },
      })),
      onFailure: 'halt',
      probes: [],
      healthyPassesRequired: 1,
    },
  };

  const channels: FleetInput['channels'] = {};
  for (const c of channelNames) {
    channels[c] = {
      policy: 'rollout',
      freshnessSeconds: 3600,
      signingIntervalSeconds: 600,
      confirmDeadlineSeconds: 300,
      heartbeatSeconds: 60,
      offlineWindowSeconds: 900,
      maintenanceWindows: [],
    };
  }

  const channelEdges = opts.chainChannels
    ? channelNames.slice(1).map((after, i) => ({ before: channelNames[i]!, after }))
    : [];
  const disruptionBudgets =
    opts.budgetPct === undefined
      ? []
      : [{ id: 'fleet-wide', selector: { all: true as const }, maxInFlightPct: opts.budgetPct }];

  return {
    fleet: {
      fleet: opts.fleetName ?? 'generated',
      cacheUrl: 'https://cache.example.invalid',
      hosts,
      channels,
      policies,
      hostEdges: [],
      channelEdges,
      disruptionBudgets,
      revoked: { hosts: [], closures: [] },
    },
    hostKeys,
  };
}
