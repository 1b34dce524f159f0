// The helper thread of startAckPreparse: takes the log's records in and posts the acks that pass, then
// establishes their signatures if asked (preparseMain). Built as its own file in dist/
// (scripts/build.mjs), so the thread loads compiled JavaScript.
import { parentPort, workerData } from 'node:worker_threads';
import { preparseMain, type PreparseRequest } from './ack-preparse.ts';

preparseMain(workerData as PreparseRequest, (digests) => parentPort!.postMessage(digests));
