// Pure parts of the client, one by one: ClientPeer (a port of tests/unit/test_peer.py),
// the backoff schedule, negotiate bodies and answers, batching within the limits, close
// codes.
import { test } from "node:test";
import assert from "node:assert/strict";

import { backoff } from "../../anywire/clients/js/backoff.js";
import { shouldReconnect } from "../../anywire/clients/js/closecodes.js";
import { jsonCodec, msgpackCodec } from "../../anywire/clients/js/codec.js";
import { ProtocolError, QueueFull } from "../../anywire/clients/js/errors.js";
import * as F from "../../anywire/clients/js/frames.js";
import { LIMITS, negotiateBody, parseNegotiated, transportBase } from "../../anywire/clients/js/negotiate.js";
import { ClientPeer } from "../../anywire/clients/js/peer.js";
import { wsUrl } from "../../anywire/clients/js/transport.js";

const hello = (sid, recovered, seq, last) => F.hello(sid, recovered, seq, last);
const ev = (s, d = null) => F.event(s, "n", d);
const seqs = (frames) => frames.map((f) => f.s);
const sent = (peer, n) => Array.from({ length: n }, (_, i) => peer.event("m", i));

// -- ClientPeer ---------------------------------------------------------------------------

test("peer: outgoing frames are numbered and tracked", () => {
  const peer = new ClientPeer();
  const e = peer.event("chat", { x: 1 }, peer.nextId());
  const join = peer.join("lobby", { nick: "a" });
  const leave = peer.leave("lobby");
  const ack = peer.ack(9, true, "fine");
  assert.deepEqual(e, { t: "event", s: 1, id: 1, e: "chat", d: { x: 1 } });
  assert.deepEqual(join, { t: "join", s: 2, id: 2, r: "lobby", meta: { nick: "a" } });
  assert.deepEqual(leave, { t: "leave", s: 3, id: 3, r: "lobby" });
  assert.deepEqual(ack, { t: "ack", s: 4, id: 9, ok: true, d: "fine" });
  assert.equal(peer.outSeq, 4);
  assert.deepEqual(peer.unconfirmed, [e, join, leave, ack]);
  assert.deepEqual(peer.ack(3, false, undefined, { code: "no", message: "denied" }).err, { code: "no", message: "denied" });
});

test("peer: the retransmission buffer is bounded; a refused frame takes no number", () => {
  const peer = new ClientPeer(2);
  sent(peer, 2);
  assert.equal(peer.hasRoom(), false);
  assert.throws(() => peer.event("m", 3), QueueFull);
  assert.equal(peer.outSeq, 2);
  peer.receive(F.rx(1));
  assert.equal(peer.hasRoom(), true);
  assert.equal(peer.event("m", 3).s, 3);
});

test("peer: rx confirms cumulatively; a stale rx changes nothing", () => {
  const peer = new ClientPeer();
  sent(peer, 5);
  assert.equal(peer.receive(F.rx(3)), null);
  assert.deepEqual(seqs(peer.unconfirmed), [4, 5]);
  peer.receive(F.rx(2));
  assert.deepEqual(seqs(peer.unconfirmed), [4, 5]);
  peer.receive(F.rx(5));
  assert.deepEqual(peer.unconfirmed, []);
});

test("peer: the first hello returns what was queued before connecting", () => {
  const peer = new ClientPeer();
  const queued = sent(peer, 2);
  assert.deepEqual(peer.onHello(hello("A", false, 0, 0)), queued);
  assert.equal(peer.sid, "A");
});

test("peer: a recovered hello trims by last, keeps the receive position", () => {
  const peer = new ClientPeer();
  peer.onHello(hello("A", false, 0, 0));
  for (const s of [1, 2, 3]) peer.receive(ev(s));
  const frames = sent(peer, 5);
  assert.deepEqual(peer.onHello(hello("A", true, 3, 3)), frames.slice(3));
  assert.equal(peer.inLast, 3);
  assert.equal(peer.receive(ev(3)), null);
  assert.notEqual(peer.receive(ev(4)), null);
  assert.throws(() => peer.onHello(hello("B", true, 0, 0)), ProtocolError);
});

test("peer: a recovered hello whose last no frame sent could explain is refused", () => {
  // Found by the state-machine fuzz (issue #13), as in tests/unit/test_peer.py.
  const peer = new ClientPeer();
  peer.onHello(hello("A", false, 0, 0));
  sent(peer, 3);
  assert.notEqual(peer.helloProblem(hello("A", true, 0, 4)), null);
  assert.throws(() => peer.onHello(hello("A", true, 0, 4)), ProtocolError);
  peer.confirm(2);
  assert.notEqual(peer.helloProblem(hello("A", true, 0, 1)), null);
  assert.equal(peer.helloProblem(hello("A", true, 0, 2)), null);
  assert.equal(peer.helloProblem(hello("A", false, 0, 99)), null);
  assert.deepEqual(peer.onHello(hello("A", true, 0, 3)), []);
});

test("peer: an unrecovered hello renumbers what is unconfirmed (also under the same sid)", () => {
  const peer = new ClientPeer();
  peer.onHello(hello("A", false, 0, 0));
  const frames = sent(peer, 5);
  peer.receive(F.rx(3));
  for (let s = 1; s < 8; s++) peer.receive(ev(s));
  const resend = peer.onHello(hello("B", false, 0, 0));
  assert.deepEqual(seqs(resend), [1, 2]);
  assert.deepEqual(resend.map((f) => f.d), frames.slice(3).map((f) => f.d));
  assert.equal(peer.sid, "B");
  assert.equal(peer.inLast, 0);
  assert.equal(peer.rxSent, 0);
  assert.equal(peer.event("m", 99).s, 3);
  assert.notEqual(peer.receive(ev(1)), null);
  // The same sid: a resume the server could not serve.
  peer.receive(F.rx(3));
  const pending = sent(peer, 2);
  assert.deepEqual(peer.onHello(hello("B", false, 0, 0)).map((f) => [f.s, f.d]), [[1, pending[0].d], [2, pending[1].d]]);
});

test("peer: renumbering keeps every frame kind and leaves the originals alone", () => {
  const peer = new ClientPeer();
  peer.onHello(hello("A", false, 0, 0));
  sent(peer, 3);
  peer.receive(F.rx(3));
  const e = peer.event("e", Uint8Array.of(0), 7);
  const join = peer.join("r", { m: 1 });
  const leave = peer.leave("r");
  const ack = peer.ack(5, false, undefined, { code: "x", message: "y" });
  const resend = peer.onHello(hello("B", false, 0, 0));
  assert.deepEqual(resend, [
    { t: "event", s: 1, id: 7, e: "e", d: Uint8Array.of(0) },
    { t: "join", s: 2, id: join.id, r: "r", meta: { m: 1 } },
    { t: "leave", s: 3, id: leave.id, r: "r" },
    { t: "ack", s: 4, id: 5, ok: false, err: { code: "x", message: "y" } },
  ]);
  assert.deepEqual([e.s, ack.s], [4, 7]);
  // Canonical key order survives renumbering: encodings stay byte-exact.
  assert.equal(jsonCodec.encode(resend[0]), '{"t":"event","s":1,"id":7,"e":"e","d":{"$bin":"AA=="}}');
});

test("peer: an unrecovered hello takes the server's receive position", () => {
  const peer = new ClientPeer();
  peer.onHello(hello("A", false, 0, 0));
  peer.receive(ev(1));
  peer.onHello(hello("B", false, 2, 0));
  assert.equal(peer.inLast, 2);
  assert.notEqual(peer.receive(ev(3)), null);
});

test("peer: duplicates are dropped, gaps throw without moving", () => {
  const peer = new ClientPeer();
  const first = ev(1, "a");
  assert.equal(peer.receive(first), first);
  assert.equal(peer.receive(ev(1, "a")), null);
  assert.notEqual(peer.receive(F.ack(2, 1, true, null)), null);
  assert.equal(peer.receive(F.ack(2, 1, true, null)), null);
  assert.equal(peer.inLast, 2);
  for (const [before, s] of [[0, 2], [2, 4], [2, 100]]) {
    const p = new ClientPeer();
    for (let k = 1; k <= before; k++) p.receive(ev(k));
    assert.throws(() => p.receive(ev(s)), (e) => e instanceof ProtocolError && e.code === 4502);
    assert.equal(p.inLast, before);
  }
  assert.deepEqual(peer.receive(F.ping()), { t: "ping" });
  assert.deepEqual(peer.receive(F.close(4000, "bye")), { t: "close", c: 4000, m: "bye" });
});

test("peer: rx every 16 frames, forced with a pong, not for duplicates", () => {
  const peer = new ClientPeer();
  assert.equal(peer.rxDue(true), null);
  for (let s = 1; s < 16; s++) {
    peer.receive(ev(s));
    assert.equal(peer.rxDue(), null);
  }
  peer.receive(ev(16));
  assert.deepEqual(peer.rxDue(), { t: "rx", n: 16 });
  assert.equal(peer.rxDue(), null);
  assert.equal(peer.rxDue(true), null);
  for (let s = 1; s <= 16; s++) peer.receive(ev(s));
  assert.equal(peer.rxDue(true), null);
  peer.receive(ev(17));
  assert.deepEqual(peer.rxDue(true), { t: "rx", n: 17 });
  assert.deepEqual([peer.nextId(), peer.nextId()], [1, 2]);
  assert.equal(peer.join("r").id, 3);
});

test("peer: a fresh hello sends rejoins first and may rewrite what it resends", () => {
  const peer = new ClientPeer();
  peer.onHello(hello("s", false, 0, 0));
  peer.event("a", 1);
  peer.join("r", null, ["ep", 3]);
  const rejoin = F.join(0, 99, "lobby", null, ["ep", 40]);
  const resent = peer.onHello(hello("s", false, 0, 0), [rejoin], (f) => (f.t === "join" ? F.join(f.s, f.id, f.r, f.meta, ["ep", 9]) : f));
  assert.deepEqual(resent.map((f) => [f.t, f.s]), [["join", 1], ["event", 2], ["join", 3]]);
  assert.equal(resent[0].id, 99);
  assert.deepEqual(resent[2].since, ["ep", 9]);
  assert.equal(peer.outSeq, 3);
  assert.equal(rejoin.s, 0, "the frames given are left alone");
  // A recovered hello neither prepends nor rewrites.
  const again = peer.onHello(hello("s", true, 0, 0), [rejoin], () => assert.fail("no rewrite"));
  assert.deepEqual(again.map((f) => f.s), [1, 2, 3]);
});

test("peer: a join sent again keeps its id", () => {
  const peer = new ClientPeer();
  assert.equal(peer.join("r", null, null, 41).id, 41);
  assert.equal(peer.join("r").id, 1);
});

// -- backoff ------------------------------------------------------------------------------

test("backoff: the ceiling doubles from base and holds at the cap; delays are full jitter", () => {
  const top = backoff(500, 10000, () => 1 - Number.EPSILON);
  const ceilings = Array.from({ length: 8 }, () => Math.round(top.next().value));
  assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  const zero = backoff(500, 10000, () => 0);
  assert.equal(zero.next().value, 0);
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const d = backoff(500, 10000, random);
  const expected = [500, 1000, 2000, 4000, 8000, 10000];
  for (let n = 0; n < 200; n++) {
    const v = d.next().value;
    assert.ok(v >= 0 && v < expected[Math.min(n, 5)], `delay ${n}: ${v}`);
  }
  // A crowd does not come back in lockstep.
  const crowd = new Set(Array.from({ length: 50 }, () => Math.round(backoff(500, 10000).next().value)));
  assert.ok(crowd.size > 40);
  assert.equal(Math.round(backoff(5000, 1000, () => 1 - Number.EPSILON).next().value), 1000, "a cap below base caps the first delay");
  for (const [base, cap] of [[0, 1], [1, 0], [-1, 5], [NaN, 5]]) assert.throws(() => backoff(base, cap), RangeError);
});

// -- negotiate answers ------------------------------------------------------------------------

const ANSWER = {
  v: 1, sid: "s", token: "tk", ticket: "ti", codec: "msgpack", resumable: false,
  transports: [{ name: "sse", url: "/anywire/sse", codec: "json" }, { name: "websocket", url: "/anywire/ws" }],
  send_url: "/anywire/send", ping_interval: 1000, ack_timeout: 2500,
};

test("negotiate: answers are validated; missing limits take the protocol defaults", () => {
  const neg = parseNegotiated(ANSWER);
  assert.deepEqual(neg.transports, [{ name: "sse", url: "/anywire/sse", codec: "json" }, { name: "websocket", url: "/anywire/ws", codec: "msgpack" }]);
  assert.equal(neg.ping_interval, 1000);
  assert.equal(neg.ack_timeout, 2500);
  assert.equal(neg.ping_timeout, LIMITS.ping_timeout);
  assert.equal(neg.max_batch, 100);
  assert.equal(parseNegotiated({ ...ANSWER, resumable: "yes" }).resumable, false);
  assert.equal(parseNegotiated({ ...ANSWER, extra: 1 }).sid, "s", "unknown fields are ignored");
  for (const bad of [null, [], "x", { ...ANSWER, sid: 5 }, { ...ANSWER, token: "" }, { ...ANSWER, transports: "ws" },
    { ...ANSWER, transports: [{ name: "ws" }] }, { ...ANSWER, transports: [{ name: "ws", url: "/", codec: "xml" }] },
    { ...ANSWER, ping_interval: -1 }, { ...ANSWER, max_batch: "100" }]) {
    assert.throws(() => parseNegotiated(bad), Error, JSON.stringify(bad));
  }
  assert.throws(() => parseNegotiated({ ...ANSWER, v: 2 }), (e) => e.terminal === true);
});

test("negotiate: the body reports failed transports, the session to resume and every position", () => {
  const options = { namespace: "/chat", transports: ["websocket", "sse"], codec: "json" };
  assert.deepEqual(negotiateBody(options, ["sse"], null, []), {
    v: 1, ns: "/chat", transports: ["websocket", "sse"], codecs: ["json"], failed: ["sse"],
  });
  const since = [["user:/chat:u", "ep", 4], ["room:/chat:a", "ep", 9]];
  const body = negotiateBody({ ...options, codec: "msgpack" }, [], "tok", since);
  assert.deepEqual(body, {
    v: 1, ns: "/chat", transports: ["websocket", "sse"], codecs: ["msgpack", "json"], failed: [], resume: "tok", since,
  });
  assert.equal("user_since" in body, false);
  const why = negotiateBody(options, ["websocket"], null, [], { websocket: "upgrade" });
  assert.deepEqual(why.failures, { websocket: "upgrade" });
});

// -- batching -------------------------------------------------------------------------------

for (const codec of [jsonCodec, msgpackCodec]) {
  test(`${codec.name}: bodies keep the order, respect max_batch and max_frame_size`, () => {
    const frames = Array.from({ length: 250 }, (_, i) => F.event(i + 1, "e", "x".repeat(i % 40)));
    const one = F.encodeBodies(codec, [frames[0]], 100, 65536);
    assert.equal(one.length, 1);
    assert.deepEqual(codec.decode(one[0]), frames[0], "a single frame is not wrapped in a batch");
    for (const [maxBatch, maxSize] of [[100, 65536], [7, 65536], [100, 500]]) {
      const bodies = F.encodeBodies(codec, frames, maxBatch, maxSize);
      const back = bodies.flatMap((b) => F.decodeFrames(codec, b));
      assert.deepEqual(back, frames);
      for (const b of bodies) {
        const decoded = codec.decode(b);
        if (Array.isArray(decoded)) {
          assert.ok(decoded.length <= maxBatch);
          assert.ok(codec.size(b) <= maxSize, `${codec.size(b)} > ${maxSize}`);
        }
      }
    }
    const huge = F.event(1, "e", "y".repeat(1000));
    assert.equal(F.encodeBodies(codec, [huge, ev(2)], 100, 100).length, 2, "an oversized lone frame still gets its own body");
  });
}

test("frames after a close are dropped, those before it kept", () => {
  const [kept, close] = F.splitAtClose([ev(1), F.close(4000, "x"), ev(2)]);
  assert.deepEqual(kept, [ev(1), F.close(4000, "x")]);
  assert.deepEqual(close, F.close(4000, "x"));
  assert.deepEqual(F.splitAtClose([ev(1)]), [[ev(1)], null]);
});

test("close codes in HTTP error bodies", () => {
  assert.equal(F.errorCode('{"error":"unauthorized","code":4501,"message":"expired"}'), 4501);
  assert.equal(F.errorCode('[{"t":"close","c":4006,"m":"gone"}]'), 4006);
  for (const body of ["", "bad gateway", "{}", '{"code":"4501"}', "[1,2]"]) assert.equal(F.errorCode(body), null);
});

test("close codes decide by range", () => {
  for (const c of [4000, 4001, 4005, 4007, 4008, 4499, 1001, 1005, 1006, 1011, 1012, 1013, 1015]) assert.equal(shouldReconnect(c), true, String(c));
  for (const c of [4500, 4501, 4505, 4506 /* retired */, 4507, 4999, 1000, 1002, 1003, 1007, 1008, 1009, 1010]) assert.equal(shouldReconnect(c), false, String(c));
});

test("names are 1-200 code points", () => {
  assert.equal(F.isName("x".repeat(200)), true);
  assert.equal(F.isName("😀".repeat(200)), true, "200 code points in 400 UTF-16 units");
  assert.equal(F.isName("😀".repeat(201)), false);
  assert.equal(F.isName(""), false);
  assert.equal(F.isName(5), false);
});

test("WebSocket URLs follow the page's scheme", () => {
  assert.equal(wsUrl("http://a.test:8000", "/anywire/ws"), "ws://a.test:8000/anywire/ws");
  assert.equal(wsUrl("https://a.test", "/anywire/ws"), "wss://a.test/anywire/ws");
});

test("lone surrogates are found wherever they are", async () => {
  const { wellFormed } = await import("../../anywire/clients/js/values.js");
  for (const ok of ["", "abc", "é", "😀", "a😀b😀", "𝄞x"]) assert.equal(wellFormed(ok), true, JSON.stringify(ok));
  for (const bad of ["\ud800", "x\udc00", "\ude00\ud83d", "a\ud83d", "\ud83d\ud83d\ude00", "😀\udc00"]) {
    assert.equal(wellFormed(bad), false, JSON.stringify(bad));
  }
});

// -- transport URLs behind a mount ----------------------------------------------------------

test("transportBase: offers under the negotiated prefix go on the origin, others on the base", () => {
  const neg = (send_url) => ({ send_url });
  assert.equal(transportBase("http://h:1", "/anywire", neg("/anywire/send")), "http://h:1");
  // a server mounted under /api advertises /api/anywire/...: no doubled prefix
  assert.equal(transportBase("http://h:1/api", "/anywire", neg("/api/anywire/send")), "http://h:1");
  assert.equal(transportBase("http://h:1", "/outer/rt", neg("/outer/rt/send")), "http://h:1");
  // a proxy strips /api before a server that does not know it
  assert.equal(transportBase("http://h:1/api", "/anywire", neg("/anywire/send")), "http://h:1/api");
  // the page's own origin
  assert.equal(transportBase("", "/api/anywire", neg("/api/anywire/send")), "");
});
