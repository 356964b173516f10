// Reconnect delays: exponential backoff with full jitter, as a pure generator (no clock).

/** Delays `uniform(0, min(cap, base * 2^n))` for n = 0, 1, 2... forever (milliseconds).
 * Full jitter spreads a crowd of clients that lost the same server, so they do not come
 * back in lockstep. Bad parameters throw here, not on the first next().
 * @param {number} [base] @param {number} [cap] @param {() => number} [random]
 * @returns {Iterator<number>} */
export function backoff(base = 500, cap = 10000, random = Math.random) {
  if (!(base > 0) || !(cap > 0)) throw new RangeError("backoff needs base > 0 and cap > 0");
  return delays(base, cap, random);
}

function* delays(base, cap, random) {
  let ceiling = Math.min(cap, base);
  for (;;) {
    yield random() * ceiling;
    ceiling = Math.min(cap, ceiling * 2);
  }
}

/** The next delay of `delays`, added to a busy server's Retry-After (ms) when it gave one:
 * never sooner than asked, and a crowd of refused clients still spreads out.
 * @param {Iterator<number>} delays @param {number|null} [retryAfter] @returns {number} */
export function retryDelay(delays, retryAfter = null) {
  const delay = delays.next().value;
  return retryAfter === null || retryAfter === undefined ? delay : retryAfter + delay;
}
