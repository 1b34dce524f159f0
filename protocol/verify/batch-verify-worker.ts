// The helper thread of verifyBatch: works through the shared batch it is given, then ends. Built as its
// own file in dist/ (scripts/build.mjs), so the thread loads compiled JavaScript like the command does.
import { workerData } from 'node:worker_threads';
import { helperMain, type SharedBatch } from './batch-shared.ts';

helperMain(workerData as SharedBatch);
