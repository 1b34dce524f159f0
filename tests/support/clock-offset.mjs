// Test helper, preloaded with `node --import` into an agent process: the host's wall clock is off by
// NIXFLEET_TEST_CLOCK_OFFSET_MS (positive = ahead). Date.now() and `new Date()` move; monotonic
// timers (setTimeout, performance.now) do not, as on a host whose clock is simply set wrong.
// OpenSSL's own clock (certificate validity) is not moved; the tests keep offsets far below the
// certificates' lifetime.
const offset = Number(process.env.NIXFLEET_TEST_CLOCK_OFFSET_MS ?? '0');
if (!Number.isSafeInteger(offset))
  throw new Error('NIXFLEET_TEST_CLOCK_OFFSET_MS must be an integer');

const RealDate = globalThis.Date;
class SkewedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + offset);
    else super(...args);
  }
  static now() {
    return RealDate.now() + offset;
  }
}
globalThis.Date = SkewedDate;
