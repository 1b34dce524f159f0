// `nixfleet trust init` and `nixfleet trust rotate`: create the first trust root and extend the chain.
// Both run on the operator's offline workstation: they need the root private keys, never the network.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  output,
  parseCommandArgs,
  parseNow,
  parseTimeOption,
  type Command,
} from './command.ts';
import {
  readPrivateKey,
  readPublicKey,
  publicPart,
  type PublicKey,
  writeFileAtomic,
  envelopeBytes,
  rootPath,
  isoTime,
  NixPublicKey,
  createRoot,
  readRoot,
  signRoot,
  verifyNextRoot,
  verifyPinnedRoot,
  verifyRootChain,
  type ReleaseKeyGrant,
  type SignedRoot,
  LIMITS,
} from '../protocol/index.ts';

const DAY = 86_400_000;

function positiveInt(flag: string, text: string | undefined, fallback?: number): number {
  if (text === undefined) {
    if (fallback === undefined) throw new UsageError(`${flag} is required`);
    return fallback;
  }
  if (!/^[1-9][0-9]{0,6}$/.test(text))
    throw new UsageError(`${flag}: expected a positive integer, got ${JSON.stringify(text)}`);
  return Number(text);
}

function cacheKeys(list: string[] | undefined): string[] {
  return (list ?? []).map((k) => {
    if (!NixPublicKey.safeParse(k).success)
      throw new UsageError(
        `--cache-key: expected "name:base64" (a Nix public key), got ${JSON.stringify(k)}`,
      );
    return k;
  });
}

function grants(files: string[], now: number, days: number): ReleaseKeyGrant[] {
  return files.map((f) => ({
    key: readPublicKey(f),
    validFrom: isoTime(now),
    validUntil: isoTime(now + days * DAY),
  }));
}

/**
 * A key role of the root (operator, enrolment) from --<role>-key / --<role>-threshold /
 * --<role>-valid-days; null when no key is given (the root then has no such role).
 */
function keyRole(
  role: 'operator' | 'enrolment',
  values: Record<string, string | boolean | string[] | undefined>,
  now: number,
): { keys: ReleaseKeyGrant[]; threshold: number } | null {
  const files = (values[`${role}-key`] as string[] | undefined) ?? [];
  const threshold = values[`${role}-threshold`] as string | undefined;
  if (files.length === 0) {
    if (threshold !== undefined)
      throw new UsageError(`--${role}-threshold needs at least one --${role}-key`);
    return null;
  }
  const days = values[`${role}-valid-days`] as string | undefined;
  return {
    keys: grants(files, now, positiveInt(`--${role}-valid-days`, days, 365)),
    threshold: positiveInt(`--${role}-threshold`, threshold, 1),
  };
}

/** The root's optional roles, as the root's fields (absent when not given). */
function optionalRoles(
  values: Record<string, string | boolean | string[] | undefined>,
  now: number,
): {
  operatorKeys?: ReleaseKeyGrant[];
  operatorThreshold?: number;
  enrolmentKeys?: ReleaseKeyGrant[];
  enrolmentThreshold?: number;
} {
  const operator = keyRole('operator', values, now);
  const enrolment = keyRole('enrolment', values, now);
  return {
    ...(operator ? { operatorKeys: operator.keys, operatorThreshold: operator.threshold } : {}),
    ...(enrolment
      ? { enrolmentKeys: enrolment.keys, enrolmentThreshold: enrolment.threshold }
      : {}),
  };
}

function writeRoot(outDir: string, root: SignedRoot): string {
  const path = join(outDir, rootPath(root.signed.version));
  writeFileAtomic(path, envelopeBytes(root));
  return path;
}

/** "name keyid [validFrom .. validUntil)" per key. */
function datedKeys(
  keys: readonly { name: string; keyid: string; validFrom: string; validUntil: string }[],
): string {
  return keys
    .map((k) => `${k.name} ${k.keyid.slice(0, 16)} [${k.validFrom} .. ${k.validUntil})`)
    .join(', ');
}

function describe(root: SignedRoot, path: string): string {
  const r = root.signed;
  return [
    `wrote ${path}: trust root v${r.version} of fleet "${r.fleet}", expires ${r.expires}`,
    `  root keys (${r.rootThreshold} of ${r.rootKeys.length}): ${r.rootKeys.map((k) => `${k.name} ${k.keyid.slice(0, 16)}`).join(', ')}`,
    `  release keys (${r.releaseThreshold} of ${r.releaseKeys.length}): ${datedKeys(r.releaseKeys)}`,
    `  cache keys: ${r.cacheKeys.join(', ') || '(none)'}`,
    `  rejectBefore: ${r.rejectBefore ?? '(none)'}`,
    r.operatorKeys
      ? `  operator keys (${r.operatorThreshold} of ${r.operatorKeys.length}): ${datedKeys(r.operatorKeys)}`
      : '  operator keys: (none: no controls are accepted)',
    r.enrolmentKeys
      ? `  enrolment keys (${r.enrolmentThreshold} of ${r.enrolmentKeys.length}): ${r.enrolmentKeys.map((k) => `${k.name} ${k.keyid.slice(0, 16)} [${k.validFrom} .. ${k.validUntil})`).join(', ')}`
      : '  enrolment keys: (none: no host enrolment)',
  ].join('\n');
}

const summaryJson = (root: SignedRoot, path: string) => ({
  path,
  version: root.signed.version,
  fleet: root.signed.fleet,
  expires: root.signed.expires,
  root: root.signed,
});

export const trustInit: Command = {
  name: 'trust init',
  summary: 'create trust root v1 (root keys, release keys, cache keys, thresholds)',
  help: `Usage: nixfleet trust init --fleet NAME --root-key FILE... --threshold N --release-key PUBFILE...
                           [--release-threshold N] [--release-valid-days D] [--cache-key 'name:base64'...]
                           [--operator-key PUBFILE... [--operator-threshold N] [--operator-valid-days D]]
                           --expires-days D --out DIR [--now ISO] [--json]

Writes DIR/root/1.json, signed by every --root-key (private key files). Agents pin this file.

Options:
  --fleet NAME             fleet name
  --root-key FILE          root private key (repeat); all of them sign v1
  --threshold N            root keys needed to sign the next root version
  --release-key PUBFILE    release (CI) public key (repeat); valid from now for --release-valid-days
  --release-threshold N    release signatures required on each document (default 1)
  --release-valid-days D   release key validity window (default 365)
  --cache-key NAME:B64     Nix binary-cache public key (repeat; optional). Hosts accept closures
                           signed by these keys only: with none, publish needs --no-cache-check
  --operator-key PUBFILE   operator public key (repeat): signs controls (nixfleet control) and nothing
                           else; without one, agents accept no controls
  --operator-threshold N   operator signatures required on each controls document (default 1)
  --operator-valid-days D  operator key validity window (default 365)
  --enrolment-key PUBFILE  enrolment public key (repeat): signs enrolment tokens and nonce documents
                           (nixfleet enrol) and nothing else; never a release or operator key
  --enrolment-threshold N  enrolment signatures required (default 1)
  --enrolment-valid-days D enrolment key validity window (default 365)
  --expires-days D         the root's lifetime
  --out DIR                trust directory (root/1.json is created inside)
  --now ISO                signing time (default: the clock)
  --json                   print the root as JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      fleet: { type: 'string' },
      'root-key': { type: 'string', multiple: true },
      threshold: { type: 'string' },
      'release-key': { type: 'string', multiple: true },
      'release-threshold': { type: 'string' },
      'release-valid-days': { type: 'string' },
      'cache-key': { type: 'string', multiple: true },
      'operator-key': { type: 'string', multiple: true },
      'operator-threshold': { type: 'string' },
      'operator-valid-days': { type: 'string' },
      'enrolment-key': { type: 'string', multiple: true },
      'enrolment-threshold': { type: 'string' },
      'enrolment-valid-days': { type: 'string' },
      'expires-days': { type: 'string' },
      out: { type: 'string' },
      now: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (!values.fleet) throw new UsageError('--fleet is required');
    if (!values.out) throw new UsageError('--out is required');
    if (!values['root-key']?.length) throw new UsageError('at least one --root-key is required');
    if (!values['release-key']?.length)
      throw new UsageError('at least one --release-key is required');
    const now = parseNow(values.now);
    const threshold = positiveInt('--threshold', values.threshold);
    const expiresDays = positiveInt('--expires-days', values['expires-days']);
    const releaseDays = positiveInt('--release-valid-days', values['release-valid-days'], 365);
    const releaseThreshold = positiveInt('--release-threshold', values['release-threshold'], 1);
    const rootKeys = values['root-key'].map((f) => readPrivateKey(f));
    const target = join(values.out, rootPath(1));
    if (existsSync(target)) {
      process.stderr.write(
        `nixfleet trust init: ${target} already exists; use \`nixfleet trust rotate\` to extend the chain\n`,
      );
      return EXIT_USAGE;
    }
    const root = createRoot({
      fleet: values.fleet,
      version: 1,
      issuedAt: isoTime(now),
      expires: isoTime(now + expiresDays * DAY),
      rootKeys: rootKeys.map(publicPart),
      rootThreshold: threshold,
      releaseKeys: grants(values['release-key'], now, releaseDays),
      releaseThreshold,
      cacheKeys: cacheKeys(values['cache-key']),
      rejectBefore: null,
      ...optionalRoles(values, now),
    });
    const signed = signRoot(root, rootKeys);
    verifyPinnedRoot(signed, target);
    const path = writeRoot(values.out, signed);
    output(values.json, summaryJson(signed, path), () => describe(signed, path));
    return EXIT_OK;
  },
};

/**
 * Reads root/1..n from a trust directory and verifies each step with the one root-chain walker (expiry
 * is not checked: rotating is how an expired root is replaced).
 */
export function readTrustChain(dir: string): SignedRoot {
  const first = join(dir, rootPath(1));
  if (!existsSync(first))
    throw new UsageError(`${first} does not exist (run \`nixfleet trust init\` first)`);
  const load = (v: number): Uint8Array | undefined => {
    const p = join(dir, rootPath(v));
    if (!existsSync(p)) return undefined;
    const bytes = readFileSync(p);
    if (bytes.byteLength > LIMITS.root)
      throw new UsageError(`${p} is larger than ${LIMITS.root} bytes`);
    return bytes;
  };
  return verifyRootChain(readRoot(load(1)!, rootPath(1)), load, null, rootPath(1)).root;
}

export const trustRotate: Command = {
  name: 'trust rotate',
  summary: 'sign the next trust root version (rotate root/release/cache keys, set rejectBefore)',
  help: `Usage: nixfleet trust rotate --trust DIR --old-root-key FILE... --root-key FILE... [--threshold N]
                             [--release-key PUBFILE... [--keep-release-keys]] [--release-valid-days D]
                             [--release-threshold N] [--cache-key NAME:B64...] [--reject-before ISO]
                             [--operator-key PUBFILE... [--keep-operator-keys]] [--operator-threshold N]
                             [--operator-valid-days D] [--no-operator-keys]
                             [--expires-days D] --out DIR [--now ISO] [--json]

Reads and verifies DIR/root/1..n, then writes OUT/root/<n+1>.json signed by the old root keys (a
threshold of root n's keys is required) and by the new root keys (a threshold of them is required).

Options:
  --trust DIR              trust directory holding root/1.json .. root/<n>.json
  --old-root-key FILE      private key of root n (repeat)
  --root-key FILE          private key of the new root set (repeat; may repeat an old key to keep it)
  --threshold N            new root threshold (default: root n's)
  --release-key PUBFILE    new release public key (repeat); replaces the release keys of root n
  --keep-release-keys      keep root n's release keys (with their windows) next to the new ones: overlap
  --release-valid-days D   window of the new release keys (default 365)
  --release-threshold N    release signatures required (default: root n's)
  --cache-key NAME:B64     replaces the cache keys (repeat; default: root n's)
  --reject-before ISO      refuse every release-signed document issued before this instant (compromise)
  --operator-key PUBFILE   new operator public key (repeat); replaces root n's operator keys
  --keep-operator-keys     keep root n's operator keys next to the new ones
  --operator-threshold N   operator signatures required (default: root n's, else 1)
  --operator-valid-days D  window of the new operator keys (default 365)
  --no-operator-keys       drop the operator role (agents then accept no new controls)
  --expires-days D         lifetime of the new root (default 365)
  --out DIR                where root/<n+1>.json is written (usually the same as --trust)
  --now ISO                signing time (default: the clock)
  --json                   print the new root as JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      trust: { type: 'string' },
      'old-root-key': { type: 'string', multiple: true },
      'root-key': { type: 'string', multiple: true },
      threshold: { type: 'string' },
      'release-key': { type: 'string', multiple: true },
      'keep-release-keys': { type: 'boolean', default: false },
      'release-valid-days': { type: 'string' },
      'release-threshold': { type: 'string' },
      'cache-key': { type: 'string', multiple: true },
      'reject-before': { type: 'string' },
      'operator-key': { type: 'string', multiple: true },
      'keep-operator-keys': { type: 'boolean', default: false },
      'operator-threshold': { type: 'string' },
      'operator-valid-days': { type: 'string' },
      'no-operator-keys': { type: 'boolean', default: false },
      'expires-days': { type: 'string' },
      out: { type: 'string' },
      now: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (!values.trust) throw new UsageError('--trust is required');
    if (!values.out) throw new UsageError('--out is required');
    if (!values['old-root-key']?.length)
      throw new UsageError('at least one --old-root-key is required');
    if (!values['root-key']?.length) throw new UsageError('at least one --root-key is required');
    const now = parseNow(values.now);
    const previous = readTrustChain(values.trust).signed;
    const oldKeys = values['old-root-key'].map((f) => readPrivateKey(f));
    const newKeys = values['root-key'].map((f) => readPrivateKey(f));
    const releaseDays = positiveInt('--release-valid-days', values['release-valid-days'], 365);
    const kept: ReleaseKeyGrant[] = previous.releaseKeys.map((k) => ({
      key: {
        name: k.name,
        keyid: k.keyid,
        publicKey: new Uint8Array(Buffer.from(k.publicKey, 'base64')),
      } satisfies PublicKey,
      validFrom: k.validFrom,
      validUntil: k.validUntil,
    }));
    const fresh = grants(values['release-key'] ?? [], now, releaseDays);
    const releaseKeys =
      fresh.length === 0
        ? kept
        : values['keep-release-keys']
          ? [...kept.filter((k) => !fresh.some((f) => f.key.keyid === k.key.keyid)), ...fresh]
          : fresh;
    const keptOperators: ReleaseKeyGrant[] = (previous.operatorKeys ?? []).map((k) => ({
      key: {
        name: k.name,
        keyid: k.keyid,
        publicKey: new Uint8Array(Buffer.from(k.publicKey, 'base64')),
      } satisfies PublicKey,
      validFrom: k.validFrom,
      validUntil: k.validUntil,
    }));
    const freshOperators = grants(
      values['operator-key'] ?? [],
      now,
      positiveInt('--operator-valid-days', values['operator-valid-days'], 365),
    );
    if (values['no-operator-keys'] && freshOperators.length > 0)
      throw new UsageError('--no-operator-keys and --operator-key exclude each other');
    const operatorKeys = values['no-operator-keys']
      ? []
      : freshOperators.length === 0
        ? keptOperators
        : values['keep-operator-keys']
          ? [
              ...keptOperators.filter(
                (k) => !freshOperators.some((f) => f.key.keyid === k.key.keyid),
              ),
              ...freshOperators,
            ]
          : freshOperators;
    let rejectBefore = previous.rejectBefore;
    if (values['reject-before'] !== undefined)
      rejectBefore = isoTime(parseTimeOption('--reject-before', values['reject-before']));
    const next = createRoot({
      fleet: previous.fleet,
      version: previous.version + 1,
      issuedAt: isoTime(now),
      expires: isoTime(now + positiveInt('--expires-days', values['expires-days'], 365) * DAY),
      rootKeys: newKeys.map(publicPart),
      rootThreshold: positiveInt('--threshold', values.threshold, previous.rootThreshold),
      releaseKeys,
      releaseThreshold: positiveInt(
        '--release-threshold',
        values['release-threshold'],
        previous.releaseThreshold,
      ),
      cacheKeys: values['cache-key'] ? cacheKeys(values['cache-key']) : previous.cacheKeys,
      rejectBefore,
      ...(operatorKeys.length > 0
        ? {
            operatorKeys,
            operatorThreshold: positiveInt(
              '--operator-threshold',
              values['operator-threshold'],
              previous.operatorThreshold ?? 1,
            ),
          }
        : {}),
      // The enrolment role carries over unchanged (it is set at trust init).
      ...(previous.enrolmentKeys && previous.enrolmentThreshold
        ? {
            enrolmentKeys: previous.enrolmentKeys.map((k) => ({
              key: {
                name: k.name,
                keyid: k.keyid,
                publicKey: new Uint8Array(Buffer.from(k.publicKey, 'base64')),
              } satisfies PublicKey,
              validFrom: k.validFrom,
              validUntil: k.validUntil,
            })),
            enrolmentThreshold: previous.enrolmentThreshold,
          }
        : {}),
    });
    const signed = signRoot(next, [...oldKeys, ...newKeys]);
    const target = rootPath(next.version);
    // Refuse to write a root the agents would refuse (too few old or new signatures): exit 1, typed error.
    verifyNextRoot({ signed: previous, signatures: [] }, signed, target);
    if (existsSync(join(values.out, target))) {
      process.stderr.write(`nixfleet trust rotate: ${join(values.out, target)} already exists\n`);
      return EXIT_USAGE;
    }
    const path = writeRoot(values.out, signed);
    output(values.json, summaryJson(signed, path), () => describe(signed, path));
    return EXIT_OK;
  },
};

export default trustInit;
