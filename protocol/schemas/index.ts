export * from './common.ts';
export * from './envelope.ts';
export * from './selector.ts';
export * from './root.ts';
export * from './timestamp.ts';
export * from './release.ts';
export * from './revocations.ts';
export * from './ack.ts';
export { parseWith, describeIssues } from './parse.ts';
