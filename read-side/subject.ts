// A --host / --channel the verified release does not contain: a usage error for the CLI (exit 2),
// never a verification failure.
export class UnknownSubject extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnknownSubject';
  }
}
