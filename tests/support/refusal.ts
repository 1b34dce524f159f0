// The typed refusal a call throws, for tests that assert its code, file and detail.
import { VerificationError } from '../../protocol/index.ts';

/** The VerificationError `fn` throws; any other error is rethrown, and returning is a failure. */
export function refusal(fn: () => unknown): VerificationError {
  try {
    fn();
  } catch (e) {
    if (e instanceof VerificationError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}
