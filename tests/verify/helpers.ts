// Shared assertions for the verification tests: every refusal must have the right class AND name the file.
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VerificationError, type VerificationCode } from '../../protocol/errors.ts';

export const NOW = Date.parse('2030-01-15T12:00:00Z');

/** Asserts that `e` is the typed refusal `code` naming `file`; rethrows anything that is not a refusal. */
function assertRefusal(e: unknown, code: VerificationCode, file: string): VerificationError {
  if (!(e instanceof VerificationError)) throw e;
  assert.is(e.code, code, `expected ${code} for ${file}, got ${e.message}`);
  assert.is(e.file, file, `expected the error to name ${file}: ${e.message}`);
  return e;
}

function unexpectedSuccess(code: VerificationCode, file: string): never {
  assert.unreachable(`expected ${code} naming ${file}, but verification succeeded`);
  throw new Error('unreachable');
}

export function expectRefusal(
  fn: () => unknown,
  code: VerificationCode,
  file: string,
): VerificationError {
  try {
    fn();
  } catch (e) {
    return assertRefusal(e, code, file);
  }
  return unexpectedSuccess(code, file);
}

export async function expectRefusalAsync(
  fn: () => Promise<unknown>,
  code: VerificationCode,
  file: string,
): Promise<VerificationError> {
  try {
    await fn();
  } catch (e) {
    return assertRefusal(e, code, file);
  }
  return unexpectedSuccess(code, file);
}

const made: string[] = [];
export function tempDir(label: string): string {
  const d = mkdtempSync(join(tmpdir(), `nixfleet-${label}-`));
  made.push(d);
  return d;
}
export function cleanupTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Flips one bit of a letter inside the value of `"fleet"` (still valid JSON and a valid name). */
export function flipByteInFleetValue(path: string): void {
  const bytes = readFileSync(path);
  const marker = Buffer.from('"fleet":"');
  const at = bytes.indexOf(marker);
  if (at < 0) throw new Error(`no fleet value in ${path}`);
  bytes[at + marker.length]! ^= 0x01;
  writeFileSync(path, bytes);
}
