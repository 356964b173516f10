// Both codecs against the golden vectors shared with Python (tests/vectors), byte for
// byte, plus the data-model edges JavaScript makes tricky (floats, big integers, bytes).
import { test } from "node:test";
import assert from "node:assert/strict";

import { jsonCodec, msgpackCodec } from "../../anywire/clients/js/codec.js";
import { ProtocolError } from "../../anywire/clients/js/errors.js";
import { decodeFrames, parseFrame } from "../../anywire/clients/js/frames.js";
import { formatFloat } from "../../anywire/clients/js/json.js";
import { fromHex, fromJsonable, hex, loadVectors, same } from "./helpers.js";

const FRAMES = loadVectors("frames.json");
const INVALID = loadVectors("invalid.json");
const CODECS = { json: jsonCodec, msgpack: msgpackCodec };

const wire = (codec, c) => (codec.name === "json" ? c.json : fromHex(c.msgpack));
const asText = (codec, encoded) => (codec.name === "json" ? encoded : hex(encoded));
const expected = (codec, c) => (codec.name === "json" ? c.json : c.msgpack);

for (const codec of Object.values(CODECS)) {
  test(`${codec.name}: every frame vector encodes byte for byte`, () => {
    let n = 0;
    for (const c of FRAMES.filter((c) => !Array.isArray(c.frame))) {
      const frame = fromJsonable(c.frame);
      assert.equal(asText(codec, codec.encode(parseFrame(frame))), expected(codec, c), c.name);
      assert.equal(asText(codec, codec.encode(frame)), expected(codec, c), c.name);
      n++;
    }
    assert.ok(n >= 50);
  });

  test(`${codec.name}: every frame vector decodes back to the same frame`, () => {
    for (const c of FRAMES.filter((c) => !Array.isArray(c.frame))) {
      const frame = fromJsonable(c.frame);
      const decoded = codec.decode(wire(codec, c));
      assert.ok(same(decoded, frame), c.name);
      assert.ok(same(parseFrame(decoded), parseFrame(frame)), c.name);
      assert.equal(asText(codec, codec.encode(parseFrame(decoded))), expected(codec, c), c.name);
    }
  });

  test(`${codec.name}: batch vectors`, () => {
    for (const c of FRAMES.filter((c) => Array.isArray(c.frame))) {
      const frames = fromJsonable(c.frame);
      const batch = codec.batch(frames.map((f) => codec.encode(parseFrame(f))));
      assert.equal(asText(codec, batch), expected(codec, c), c.name);
      const decoded = decodeFrames(codec, wire(codec, c));
      assert.equal(decoded.length, frames.length);
      decoded.forEach((f, i) => assert.ok(same(f, parseFrame(frames[i])), c.name));
    }
  });

  test(`${codec.name}: every invalid vector is refused with 4502`, () => {
    let n = 0;
    for (const c of INVALID.filter((c) => c.codec === codec.name)) {
      const input = codec.name === "json" ? c.input : fromHex(c.input);
      if (c.stage === "decode") {
        assert.throws(() => codec.decode(input), (err) => err instanceof ProtocolError && err.code === c.code, c.name);
      } else {
        const value = codec.decode(input);
        assert.throws(() => decodeFrames({ decode: () => value }, null), (err) => err instanceof ProtocolError && err.code === c.code, c.name);
      }
      n++;
    }
    assert.ok(n >= 60, `${n} vectors`);
  });
}

test("json: floats are written like Python's repr", () => {
  const cases = [
    [1.5, "1.5"], [-0.25, "-0.25"], [1e-7, "1e-07"], [123456.789, "123456.789"], [0.0001, "0.0001"],
    [0.00001, "1e-05"], [1.5e-7, "1.5e-07"], [1e16, "1e+16"], [1.25e22, "1.25e+22"], [2 ** 60, "1.152921504606847e+18"],
    [0.1, "0.1"], [-1e-300, "-1e-300"], [123.0e13 + 0.5, "1230000000000000.5"],
  ];
  for (const [value, text] of cases) assert.equal(formatFloat(value), text, String(value));
  assert.equal(jsonCodec.encode({ d: 1e20 }), '{"d":1e+20}'); // integral but beyond 2^53: a float
  assert.equal(jsonCodec.encode({ d: -0 }), '{"d":0}');
});

test("json: a float that looks like an integer is not a uint", () => {
  assert.throws(() => parseFrame(jsonCodec.decode('{"t":"rx","n":2.0}')), ProtocolError);
  assert.throws(() => parseFrame(jsonCodec.decode('{"t":"rx","n":2e0}')), ProtocolError);
  assert.equal(parseFrame(jsonCodec.decode('{"t":"rx","n":2}')).n, 2);
  // In application data the float is just a number.
  assert.equal(jsonCodec.decode('{"d":2.0}').d, 2);
});

test("json: integers beyond 2^53 are read exactly as BigInt and written back", () => {
  const value = jsonCodec.decode('{"d":[18446744073709551615,-9223372036854775808,9007199254740993]}').d;
  assert.deepEqual(value, [18446744073709551615n, -9223372036854775808n, 9007199254740993n]);
  assert.equal(jsonCodec.encode({ d: value }), '{"d":[18446744073709551615,-9223372036854775808,9007199254740993]}');
  assert.throws(() => jsonCodec.encode({ d: 2n ** 64n }), TypeError);
});

test("msgpack: 64-bit integers round-trip (BigInt beyond 2^53)", () => {
  for (const v of [2 ** 53 - 1, -(2 ** 53) + 1, 2n ** 64n - 1n, -(2n ** 63n), 2n ** 53n]) {
    const back = msgpackCodec.decode(msgpackCodec.encode({ d: v })).d;
    assert.equal(BigInt(back), BigInt(v));
  }
  assert.equal(hex(msgpackCodec.encode(5n)), "05");
  assert.throws(() => msgpackCodec.encode(2n ** 64n), TypeError);
  assert.throws(() => msgpackCodec.encode(-(2n ** 63n) - 1n), TypeError);
});

test("msgpack: floats are float64; integral floats are marked, not uints", () => {
  assert.equal(hex(msgpackCodec.encode(1.5)), "cb3ff8000000000000");
  assert.throws(() => parseFrame(msgpackCodec.decode(fromHex("82a174a27278a16eca40000000"))), ProtocolError); // n: float32 2.0
  assert.equal(msgpackCodec.decode(fromHex("ca3fc00000")), 1.5);
});

test("msgpack: every header width is read", () => {
  const big = "x".repeat(70000);
  for (const v of [big, "y".repeat(300), new Uint8Array(70000), new Array(70000).fill(1)]) {
    const back = msgpackCodec.decode(msgpackCodec.encode(v));
    assert.equal(back.length, v.length);
  }
  const wide = Object.fromEntries(Array.from({ length: 70000 }, (_, i) => [`k${i}`, i]));
  assert.equal(Object.keys(msgpackCodec.decode(msgpackCodec.encode(wide))).length, 70000);
  // str8 for a short string written by another encoder, array16 for 2 items.
  assert.equal(msgpackCodec.decode(fromHex("d90161")), "a");
  assert.deepEqual(msgpackCodec.decode(fromHex("dc00020102")), [1, 2]);
  assert.deepEqual(msgpackCodec.decode(fromHex("de0001a16101")), { a: 1 });
});

test("msgpack: the timestamp extension is read as float seconds", () => {
  assert.equal(msgpackCodec.decode(fromHex("d6ff00000010")), 16);
  // 8 bytes: 500000000 ns and 1 s
  const ns = (500000000 * 4).toString(16).padStart(8, "0");
  assert.equal(msgpackCodec.decode(fromHex("d7ff" + ns + "00000001")), 1.5);
  assert.equal(msgpackCodec.decode(fromHex("c70cff" + "00000000" + "0000000000000002")), 2);
});

for (const codec of Object.values(CODECS)) {
  test(`${codec.name}: values that cannot be sent raise TypeError`, () => {
    for (const bad of [NaN, Infinity, () => 1, Symbol("x"), "\ud800", { a: "x\udc00" }, new Map([[1, 2]])]) {
      assert.throws(() => codec.encode({ d: bad }), TypeError, String(bad && bad.toString ? "" : bad));
    }
  });

  test(`${codec.name}: bytes of every kind are binary values`, () => {
    for (const value of [Uint8Array.of(0, 255), Uint8Array.of(0, 255).buffer, new DataView(Uint8Array.of(0, 255).buffer)]) {
      const back = codec.decode(codec.encode({ d: value })).d;
      assert.ok(back instanceof Uint8Array);
      assert.equal(hex(back), "00ff");
    }
  });

  test(`${codec.name}: maps, undefined values, Dates and __proto__ keys`, () => {
    const value = codec.decode(codec.encode({ a: undefined, b: new Map([["x", 1]]), c: new Date(0), d: [undefined] }));
    assert.deepEqual(value, { b: { x: 1 }, c: "1970-01-01T00:00:00.000Z", d: [null] });
    const proto = codec.decode(codec.encode(JSON.parse('{"__proto__": {"polluted": 1}}')));
    assert.equal({}.polluted, undefined);
    assert.deepEqual(Object.keys(proto), ["__proto__"]);
  });

  test(`${codec.name}: deep nesting is bounded`, () => {
    let deep = null;
    for (let i = 0; i < 5000; i++) deep = [deep];
    assert.throws(() => codec.encode(deep), TypeError);
  });
}

test("json: deeply nested input is a protocol error, not a crash", () => {
  assert.throws(() => jsonCodec.decode("[".repeat(100000) + "]".repeat(100000)), ProtocolError);
});

test("json: text and UTF-8 bytes decode alike; invalid UTF-8 is refused", () => {
  const c = FRAMES.find((c) => c.name === "event_unicode_non_bmp");
  assert.ok(same(jsonCodec.decode(c.json), jsonCodec.decode(new TextEncoder().encode(c.json))));
  assert.throws(() => jsonCodec.decode(Uint8Array.of(0x22, 0xff, 0x22)), ProtocolError);
});

test("json: $bin lookalikes stay maps", () => {
  assert.deepEqual(jsonCodec.decode('{"$bin":5}'), { $bin: 5 });
  assert.deepEqual(jsonCodec.decode('{"$bin":"AP8=","x":1}'), { $bin: "AP8=", x: 1 });
});

test("msgpack refuses text input and oversized messages", () => {
  assert.throws(() => msgpackCodec.decode('{"t":"ping"}'), ProtocolError);
  assert.throws(() => msgpackCodec.decode(new Uint8Array(16 * 1024 * 1024 + 1)), (e) => e.code === 4503);
});
