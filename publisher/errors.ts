// A publish or refresh that the publisher refuses on purpose (exit 1 in the CLI), as opposed to an I/O
// failure (exit 2). The message says what to do about it.
export class PublishRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublishRefused';
  }
}
