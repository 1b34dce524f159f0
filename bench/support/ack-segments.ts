// An ack log made by a bench in one piece, cut into the segments the endpoint would have written
// (control-plane/ack-log.ts): a segment ends with the record whose flush takes it past the segment size,
// so each holds whole records and the last one is the current segment.
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ackSegmentName, listAckLogSegments } from '../../protocol/ack-log.ts';
import { DEFAULT_SEGMENT_BYTES } from '../../control-plane/ack-log.ts';

/** Where each segment of a log of `bytes` begins and ends (a segment per record past `segmentBytes`). */
export function segmentBounds(
  bytes: Buffer,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): { start: number; end: number }[] {
  const bounds: { start: number; end: number }[] = [];
  for (let start = 0; start < bytes.length;) {
    const limit = start + segmentBytes;
    const end = limit >= bytes.length ? bytes.length : bytes.indexOf(0x0a, limit - 1) + 1;
    bounds.push({ start, end });
    start = end;
  }
  return bounds;
}

/**
 * Cuts the log in directory `dir` into segments when its first segment holds more than one segment's
 * records (a log a bench wrote whole, or kept from before the endpoint's segment size changed). Returns
 * the bounds of the segments made (none: the log was left as it is). The later segments are written
 * first and the first one cut last, so a run killed meanwhile leaves the first segment whole and the
 * next cut writes the others again.
 */
export function cutAckLog(
  dir: string,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): { start: number; end: number }[] {
  const first = listAckLogSegments(dir)[0];
  if (first === undefined || first.index !== 0) return [];
  const bytes = readFileSync(first.file);
  const bounds = segmentBounds(bytes, segmentBytes);
  if (bounds.length < 2) return [];
  for (let i = 1; i < bounds.length; i++)
    writeFileSync(join(dir, ackSegmentName(i)), bytes.subarray(bounds[i]!.start, bounds[i]!.end));
  truncateSync(first.file, bounds[0]!.end);
  return bounds;
}
