// The runtime detection (runtime.js) and the event-stream parser behind SSE over fetch
// (fetchsse.js): pure parts, without a server (tests/js/test_anywhere.py runs them for real).
import { test } from "node:test";
import assert from "node:assert/strict";

import { EventStreamParser } from "../../anywire/clients/js/fetchsse.js";
import { canCarry, usableTransports } from "../../anywire/clients/js/runtime.js";

const parse = (chunks) => {
  const got = [];
  const parser = new EventStreamParser((data) => got.push(data));
  for (const chunk of chunks) parser.push(chunk);
  return got;
};

test("events split anywhere across chunks, CRLF split between two chunks included", () => {
  const stream = ': padding\r\n\r\ndata: {"t":"hello"}\r\n\r\ndata: [1,2]\r\n\r\n';
  const whole = parse([stream]);
  assert.deepEqual(whole, ['{"t":"hello"}', "[1,2]"]);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(parse([stream.slice(0, cut), stream.slice(cut)]), whole, `cut at ${cut}`);
  }
});

test("multi-line data, LF or CR endings, named events and comments", () => {
  assert.deepEqual(parse(["data: a\ndata: b\n\n"]), ["a\nb"]);
  assert.deepEqual(parse(["data:x\r\rdata: y\n\n"]), ["x", "y"]);
  assert.deepEqual(parse(["event: other\ndata: no\n\n: keep-alive\n\ndata: yes\n\n"]), ["yes"]);
  assert.deepEqual(parse(["data: a\r", "\ndata: b\r\n\r\n"]), ["a\nb"]); // CRLF cut in two
  assert.deepEqual(parse(["data: unfinished"]), []); // no blank line yet: not dispatched
});

test("only the transports the runtime can open are offered", () => {
  const fetch = async () => {};
  class WebSocket {}
  assert.deepEqual(usableTransports({ fetch, WebSocket }, ["websocket", "sse", "longpoll"]), ["websocket", "sse", "longpoll"]);
  assert.equal(canCarry({ fetch }, "websocket"), false);
  assert.equal(canCarry({ fetch: undefined, WebSocket }, "websocket"), false); // negotiate needs fetch
  assert.equal(canCarry({ fetch, EventSource: class {} }, "sse"), true);
  assert.throws(() => usableTransports({ fetch }, ["websocket"]), /none of the transports websocket can run here/);
});
