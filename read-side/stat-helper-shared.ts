// What the view server's stat helper (read-side/stat-helper.ts) and its thread
// (read-side/stat-helper-worker.ts) share: the form of a request and of its results. A module of its own,
// so that the thread loads nothing of the read side.

/** Numbers per path in the shared results: device, inode, size, modification and change times. */
export const STAT_FIELDS = 5;
/** A path's first field when it is missing or not a regular file (statOf's null). */
export const NOT_A_FILE = -1;
/** A path's first field when the helper could not stat it: the look stats it itself. */
export const NOT_SEEN = -2;
/** The paths of one request, in one string (no path holds a NUL). */
export const PATH_SEPARATOR = '\0';

/** What the helper thread is given: the counter it raises to the number of each request it finished. */
export interface StatHelperData {
  done: SharedArrayBuffer;
}

/** One request to the helper: its number, the paths and where their fields go. */
export interface StatRequest {
  seq: number;
  paths: string;
  results: SharedArrayBuffer;
}
