// A publish or refresh that the publisher refuses on purpose (exit 1 in the CLI), as opposed to an I/O
// failure (exit 2). The message says what to do about it.
export class PublishRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublishRefused';
  }
}

/**
 * Writing the tree failed (disk full, read-only, quota): an I/O failure (exit 2), not a refusal. Names
 * the file being written and what was cleaned up, so an operator knows which disk to look at and that
 * the tree still serves the previous release.
 */
export class TreeWriteFailed extends Error {
  constructor(
    readonly file: string,
    readonly code: string | undefined,
    cause: string,
    cleanedUp: string,
  ) {
    const hint =
      code === 'ENOSPC' || code === 'EDQUOT'
        ? 'free space on that file system and run the command again'
        : 'fix the file system and run the command again';
    super(`cannot write ${file}: ${cause}; ${cleanedUp}; ${hint}`);
    this.name = 'TreeWriteFailed';
  }
}

/** Runs a write to `file`; an I/O error comes out as TreeWriteFailed naming the file. */
export function writingFile<T>(file: string, cleanedUp: string, write: () => T): T {
  try {
    return write();
  } catch (e) {
    if (e instanceof TreeWriteFailed || e instanceof PublishRefused) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new TreeWriteFailed(
      file,
      err.code,
      err.code ? `${err.code} (${err.message.replace(/^[A-Z]+: /, '')})` : err.message,
      cleanedUp,
    );
  }
}
