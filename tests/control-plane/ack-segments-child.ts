// Child process of ack-segments.test.ts: appends records to an ack log with tiny segments, many at a
// time (group commit), and prints each record's digest once its append resolved (acknowledged). The
// test kills it with SIGKILL at some point, mid-roll or mid-write, and checks what was acknowledged.
import { AckLog } from '../../control-plane/ack-log.ts';
import { sha256Digest } from '../../protocol/canonical.ts';

const [dir, segmentBytes] = process.argv.slice(2) as [string, string];
const { log } = await AckLog.open(dir, { segmentBytes: Number(segmentBytes) });
let n = 0;
for (;;) {
  const batch = Array.from({ length: 16 }, () => {
    const canonical = JSON.stringify({ n: n++, pad: 'x'.repeat(200) });
    const digest = sha256Digest(canonical);
    return log.append({ digest, canonical }).then(() => process.stdout.write(`${digest}\n`));
  });
  await Promise.all(batch);
}
