// Typed verification errors. Every failure names the file (tree-relative path or a label) it concerns,
// so an operator reading a refusal knows exactly which document to look at.

export type VerificationCode =
  | 'BadSignature'
  | 'UnknownKey'
  | 'ThresholdNotMet'
  | 'Expired'
  | 'Stale'
  | 'FutureDated'
  | 'RollbackAttempt'
  | 'MixAndMatch'
  | 'WrongHost'
  | 'Revoked'
  | 'SchemaUnsupported'
  | 'Malformed'
  | 'TooLarge'
  | 'WrongFleet'
  | 'UnknownHost'
  | 'AckChainBroken'
  | 'NonceRefused'
  | 'KeyReused';

export class VerificationError extends Error {
  readonly code: VerificationCode;
  readonly file: string;
  readonly detail: string;
  constructor(code: VerificationCode, file: string, detail: string) {
    super(`${code}: ${file}: ${detail}`);
    this.name = code;
    this.code = code;
    this.file = file;
    this.detail = detail;
  }
  toJSON(): { code: VerificationCode; file: string; detail: string } {
    return { code: this.code, file: this.file, detail: this.detail };
  }
}

function kind(code: VerificationCode) {
  return class extends VerificationError {
    constructor(file: string, detail: string) {
      super(code, file, detail);
    }
  };
}

export class BadSignature extends kind('BadSignature') {}
export class UnknownKey extends kind('UnknownKey') {}
export class ThresholdNotMet extends kind('ThresholdNotMet') {}
export class Expired extends kind('Expired') {}
export class Stale extends kind('Stale') {}
export class FutureDated extends kind('FutureDated') {}
export class RollbackAttempt extends kind('RollbackAttempt') {}
export class MixAndMatch extends kind('MixAndMatch') {}
export class WrongHost extends kind('WrongHost') {}
export class Revoked extends kind('Revoked') {}
export class SchemaUnsupported extends kind('SchemaUnsupported') {}
export class Malformed extends kind('Malformed') {}
export class TooLarge extends kind('TooLarge') {}

export function isVerificationError(e: unknown): e is VerificationError {
  return e instanceof VerificationError;
}

// Ack checks (protocol/acks.ts verifyAck): an ack of another fleet, or of a host no signed plan names
// (so no host key to check it against), is never believed.
export class WrongFleet extends kind('WrongFleet') {}
export class UnknownHost extends kind('UnknownHost') {}
// A host's ack history with a gap, a fork or a broken link (an evidence bundle: a dropped ack).
export class AckChainBroken extends kind('AckChainBroken') {}

// Enrolment (protocol/verify/enrolment.ts, control-plane/enrolment.ts): a token whose nonce the bound
// nonce document does not allow (withdrawn, never minted) or that was already used; a CSR whose key is
// the host's current certificate key or was certified before.
export class NonceRefused extends kind('NonceRefused') {}
export class KeyReused extends kind('KeyReused') {}
