// The helper thread of read-side/stat-helper.ts: stats each path of a request with the look thread's
// own statOf and writes the fields into the shared results, then raises the done counter to the
// request's number and wakes the look. Built as its own file in dist/ (scripts/build.mjs).
import { parentPort, workerData } from 'node:worker_threads';
import { statOf } from './file-identity.ts';
import {
  NOT_A_FILE,
  NOT_SEEN,
  PATH_SEPARATOR,
  STAT_FIELDS,
  type StatHelperData,
  type StatRequest,
} from './stat-helper-shared.ts';

const done = new Int32Array((workerData as StatHelperData).done);

parentPort!.on('message', (r: StatRequest) => {
  const out = new Float64Array(r.results);
  const paths = r.paths.split(PATH_SEPARATOR);
  for (let i = 0; i < paths.length; i++) {
    const at = i * STAT_FIELDS;
    try {
      const s = statOf(paths[i]!);
      if (s === null) out[at] = NOT_A_FILE;
      else out.set([s.dev, s.ino, s.size, s.mtimeMs, s.ctimeMs], at);
    } catch {
      out[at] = NOT_SEEN;
    }
  }
  Atomics.store(done, 0, r.seq);
  Atomics.notify(done, 0);
});
