// The helper thread of startAckPreparse: takes the log's records in, reads and hashes the latest-ack
// files, and posts what passed and the files' digests.
// Built as its own file in dist/ (scripts/build.mjs), so the thread loads compiled JavaScript.
import { parentPort, workerData } from 'node:worker_threads';
import { preparse, type PreparseRequest } from './ack-preparse.ts';

parentPort!.postMessage(preparse(workerData as PreparseRequest));
