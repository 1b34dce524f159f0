// The helper thread of verifyBatch: works through the shared batch it is given, then ends; or, started by
// a warm pool (batch-pool.ts), through every batch posted to it. Built as its own file in dist/
// (scripts/build.mjs), so the thread loads compiled JavaScript like the command does.
import { parentPort, workerData } from 'node:worker_threads';
import { helperThread } from './batch-shared.ts';

helperThread(workerData, parentPort);
