// The one I/O seam of the verification workflow: the agent passes an HTTPS fetcher, the auditor and the
// operator a disk reader (protocol/disk-tree.ts), tests an in-memory map. Everything in protocol/verify is pure.

/**
 * Returns the bytes of a tree-relative path, or undefined when it does not exist. Implementations must
 * not return more than `maxBytes` bytes (they may throw TooLarge instead); the readers re-check.
 */
export type Fetch = (path: string, maxBytes: number) => Promise<Uint8Array | undefined>;
