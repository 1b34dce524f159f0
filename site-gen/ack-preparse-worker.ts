// The helper thread of startAckPreparse: takes the log's records in and posts the acks that pass.
// Built as its own file in dist/ (scripts/build.mjs), so the thread loads compiled JavaScript.
import { parentPort, workerData } from 'node:worker_threads';
import { takeInLogRecords, type PreparseRequest } from './ack-preparse.ts';

parentPort!.postMessage(takeInLogRecords(workerData as PreparseRequest));
