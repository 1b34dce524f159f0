// Where the fleet JSON comes from: a file, or `nix eval --json REF` for `--flake REF`. Both go through
// strict JSON intake (duplicate keys, non-integers, size cap) before validation.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseStrictJson, LIMITS } from '../protocol/index.ts';

export class FleetInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FleetInputError';
  }
}

export function readFleetFile(path: string): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new FleetInputError(`cannot read fleet file ${path}: ${(e as Error).message}`);
  }
  return parseStrictJson(bytes, { file: path, maxBytes: LIMITS.fleet });
}

export const NIX_MISSING =
  'nix is not installed (needed for --flake); pass a fleet JSON file instead';

/** Runs `nix eval --json REF` (the flake output that mkFleet produces) and returns the parsed fleet JSON. */
export function evalFlake(
  ref: string,
  opts: { nixBinary?: string; timeoutMs?: number } = {},
): Promise<unknown> {
  const nix = opts.nixBinary ?? 'nix';
  return new Promise((resolve, reject) => {
    execFile(
      nix,
      ['--extra-experimental-features', 'nix-command flakes', 'eval', '--json', ref],
      { maxBuffer: LIMITS.fleet, timeout: opts.timeoutMs ?? 10 * 60_000, encoding: 'buffer' },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') return reject(new FleetInputError(NIX_MISSING));
          if (code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER')
            return reject(
              new FleetInputError(`nix eval ${ref}: output exceeds ${LIMITS.fleet} bytes`),
            );
          const tail = Buffer.from(stderr)
            .toString('utf8')
            .trim()
            .split('\n')
            .slice(-15)
            .join('\n');
          return reject(
            new FleetInputError(
              `nix eval --json ${ref} failed${tail ? `:\n${tail}` : ` (${err.message})`}`,
            ),
          );
        }
        try {
          resolve(parseStrictJson(stdout, { file: `nix eval ${ref}`, maxBytes: LIMITS.fleet }));
        } catch (e) {
          reject(e);
        }
      },
    );
  });
}
