// In-band token refresh (refresh.js) against the in-memory fake server: when it is
// planned, on every transport, without a reconnect or a lost frame; retries after a
// refusal; nothing planned without expires_in, with refresh: false, or after a drop.
import { test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "../../anywire/clients/js/anywire.js";
import { REFRESH_AT, refreshDelay } from "../../anywire/clients/js/refresh.js";
import { FakeClock, FakeServer, FakeStorage, FakeWindow } from "./fakes.js";

function setup(options = {}, expiresIn = 10000) {
  const clock = new FakeClock();
  const server = new FakeServer({ clock });
  server.expiresIn = expiresIn;
  let tokens = 0;
  const socket = connect({
    url: "http://srv.test",
    getToken: async () => `tok${++tokens}`,
    env: server.env({ window: new FakeWindow(), storage: new FakeStorage() }),
    upgrade: false,
    ...options,
  });
  return { clock, server, socket };
}

test("refreshDelay: 80% of the lifetime", () => {
  assert.equal(REFRESH_AT, 0.8);
  assert.equal(refreshDelay(10000), 8000);
  assert.equal(refreshDelay(0), 0);
});

for (const transport of ["websocket", "sse", "longpoll"]) {
  test(`${transport}: refreshes at 80% of each lifetime, in-band, losing nothing`, async () => {
    const { clock, server, socket } = setup({ transports: [transport], codec: "json" });
    await socket.ready();
    const start = clock.now();
    socket.emit("n", 1);
    await clock.advance(7990);
    assert.deepEqual(server.auths, []); // not before 80%
    socket.emit("n", 2);
    await clock.advance(20);
    assert.equal(server.auths.length, 1);
    assert.equal(server.auths[0].token, "tok2"); // a fresh one from getToken
    assert.equal(server.auths[0].transport, transport);
    assert.ok(server.auths[0].at - start >= 8000 && server.auths[0].at - start < 8100);
    socket.emit("n", 3);
    // The ack granted another 10 s: the next refresh is 8 s after the first.
    await clock.advance(8000);
    assert.equal(server.auths.length, 2);
    assert.equal(server.auths[1].token, "tok3");
    socket.emit("n", 4);
    assert.deepEqual(await socket.call("echo", "still"), "still");
    assert.equal(socket.refresher.refreshed, 2);
    // One negotiate, one connection, every frame once and in order.
    assert.equal(server.negotiations.length, 1);
    assert.equal(server.sessions.size, 1);
    assert.equal(socket.transport, transport);
    assert.deepEqual(server.received("n"), [1, 2, 3, 4]);
    await socket.close();
  });
}

test("a refused refresh is tried again closer to the deadline", async () => {
  const { clock, server, socket } = setup({ transports: ["websocket"] });
  await socket.ready();
  server.refuseAuth = true;
  await clock.advance(8010);
  assert.equal(server.auths.length, 1);
  // Refused: half of the remaining 2 s later, again.
  await clock.advance(900);
  assert.equal(server.auths.length, 1);
  server.refuseAuth = false;
  await clock.advance(130);
  assert.equal(server.auths.length, 2);
  assert.equal(socket.refresher.refreshed, 1);
  assert.equal(socket.state, "connected");
  await socket.close();
});

test("nothing is planned without expires_in or with refresh: false", async () => {
  const never = setup({}, null);
  await never.socket.ready();
  await never.clock.advance(60000);
  assert.deepEqual(never.server.auths, []);
  await never.socket.close();
  const off = setup({ refresh: false });
  assert.equal(off.socket.refresher, null);
  await off.socket.ready();
  await off.clock.advance(9000);
  assert.deepEqual(off.server.auths, []);
  await off.socket.close();
});

test("a drop cancels the plan; the reconnect plans from its own negotiate", async () => {
  const { clock, server, socket } = setup({ transports: ["websocket"] });
  await socket.ready();
  await clock.advance(5000);
  server.dropLive();
  for (let i = 0; i < 100 && !(socket.state === "connected" && server.negotiations.length === 2); i++) {
    await clock.advance(10);
  }
  assert.equal(server.negotiations.length, 2);
  const reconnected = clock.now();
  await clock.advance(3100); // past the first connection's 8 s: nothing of that plan
  assert.deepEqual(server.auths, []);
  await clock.advance(8000 - (clock.now() - reconnected) + 20);
  assert.equal(server.auths.length, 1);
  await socket.close();
});
