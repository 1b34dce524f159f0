// The helper thread of read-side/stat-helper.ts: stats each path of a request with the look thread's
// own statOf and writes the fields into the shared results, then raises the done counter to the
// request's number and wakes the look. Built as its own file in dist/ (scripts/build.mjs).
import { parentPort, workerData } from 'node:worker_threads';
import { statUnlessError } from './file-identity.ts';
import * as form from './stat-helper-shared.ts';

const done = new Int32Array((workerData as form.StatHelperData).done);

parentPort!.on('message', (r: form.StatRequest) => {
  const out = new Float64Array(r.results);
  const paths = r.paths.split(form.PATH_SEPARATOR);
  for (let i = 0; i < paths.length; i++) {
    const at = i * form.STAT_FIELDS;
    const s = statUnlessError(paths[i]!);
    if (s === undefined) out[at] = form.NOT_SEEN;
    else if (s === null) out[at] = form.NOT_A_FILE;
    else out.set([s.dev, s.ino, s.size, s.mtimeMs, s.ctimeMs], at);
  }
  Atomics.store(done, 0, r.seq);
  Atomics.notify(done, 0);
});
