// The helper thread of startReadAhead: reads the files from the end of the list back to the caller.
// Built as its own file in dist/ (scripts/build.mjs), so the thread loads compiled JavaScript.
import { workerData } from 'node:worker_threads';
import { readFromTheEnd, type ReadAheadRequest } from './read-ahead.ts';

readFromTheEnd(workerData as ReadAheadRequest);
