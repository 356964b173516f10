// Transport racing (docs/protocol.md section 14, item 16; Happy-Eyeballs style): a transport a
// proxy black-holes (nothing after the WebSocket 101, an event stream held back by a
// buffering proxy) only shows by timing out. Rather than wait the whole connect timeout,
// the next offered transport starts when the preferred one has no hello after
// `raceAfter` ms, both running; the first hello wins, the others are wound down.
//
// A ticket is single use and names one session (section 11.2): each extra contender
// negotiates again for its own. A loser that reached its hello says goodbye (close 4500)
// so the server ends its session at once; one still opening gets a moment to redeem its
// ticket (an unused ticket holds a session slot until it expires), then is stopped. A
// contender stopped before its hello did not fail: it is reported as lost, not failed.

import { NORMAL } from "./closecodes.js";
import * as F from "./frames.js";

// How long a loser may take to reach its hello, and to write its goodbye (ms).
const GOODBYE = 500;

/**
 * Races `offers`: `offers[0]` with `neg`'s ticket at once, the next one (negotiating
 * again) each time `after` ms pass with no hello; `after` null: only `offers[0]`.
 * `open(neg, offer)` returns {promise, cancel}: the promise resolves with the link at
 * the hello, rejects on failure (closing its transport), and cancel() makes it reject.
 * Resolves with {won: link or null, failed: [[name, error]...], lost: [name...]}.
 */
export async function race({ neg, offers, after, open, renegotiate, sleep, stopped }) {
  const pending = after === null ? [] : offers.slice(1).map((o) => o.name);
  const running = new Set();
  const failed = [];
  const won = [];
  const launch = (n, offer) => {
    const attempt = open(n, offer);
    const entry = { name: offer.name, cancel: attempt.cancel, done: false };
    entry.promise = attempt.promise.then(
      (link) => won.push(link),
      (err) => failed.push([offer.name, err]),
    ).finally(() => {
      entry.done = true;
      running.delete(entry);
    });
    running.add(entry);
  };
  launch(neg, offers[0]);
  while (running.size > 0 && won.length === 0 && !stopped()) {
    const waits = [...running].map((e) => e.promise.then(() => false));
    if (pending.length > 0) waits.push(sleep(after).then(() => true));
    const ticked = await Promise.race(waits);
    if (won.length > 0 || running.size === 0 || stopped() || !ticked) continue;
    let extra;
    try {
      extra = await renegotiate();
    } catch {
      pending.length = 0; // e.g. an admission cap: the running contenders carry on
      continue;
    }
    const name = pending.shift();
    const offer = extra.transports.find((o) => o.name === name);
    // Launched even if a hello came meanwhile: an unused ticket would hold a session
    // slot until it expires, so the spare is wound down like any loser.
    if (offer && !stopped()) launch(extra, offer);
  }
  if (stopped()) {
    for (const e of running) e.cancel();
    for (const link of won) goodbye(link.transport);
    return { won: null, failed, lost: [] };
  }
  if (won.length === 0) return { won: null, failed, lost: [] };
  const rest = [...running];
  const lost = [...rest.map((e) => e.name), ...won.slice(1).map((l) => l.transport.name)];
  if (lost.length > 0) {
    const winner = won[0];
    Promise.race([Promise.all(rest.map((e) => e.promise)), sleep(GOODBYE)]).then(() => {
      for (const e of rest) if (!e.done) e.cancel();
      for (const link of won) if (link !== winner) goodbye(link.transport);
    });
  }
  return { won: won[0], failed, lost };
}

/** Ends a losing contender's session at once: close 4500, then hang up. */
export function goodbye(transport) {
  transport.hangUp(F.close(NORMAL, "lost the transport race"), GOODBYE);
}
