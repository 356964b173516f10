// The behaviour every runtime test drives through the real JS client (Node, Deno, Bun:
// tests/js/anywhere_client.mjs; a browser Worker: tests/browser/worker.js): an echo, a
// call from the server, a room event, a dropped connection and its resume, a room event
// after it. Runtime-neutral: no import, no global beyond setTimeout.

/** Resolves with the next value `register(resolve)` delivers, or rejects after `ms`. */
export function next(register, what, ms = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** Runs the round trip on a connected-or-connecting `socket`, recording into `out`. */
export async function roundTrip(socket, room, hello, out) {
  await socket.ready();
  out.transport = socket.transport;
  out.echo = await socket.call("echo", { hello });
  // The other way: the server calls the client, which answers with the ack.
  socket.on("double", (n) => n * 2);
  out.asked = await socket.call("ask", { event: "double", data: 21 });

  await socket.join(room);
  let onNews = null;
  socket.on("news", (data) => onNews && onNews(data));
  const news = next((r) => (onNews = r), "a room event");
  await socket.call("to_room", { event: "news", room, data: { n: 1 } });
  out.news = await news;

  // A dropped connection (as a network failure would): the socket resumes the session.
  const back = next((r) => socket.onConnect(r), "the resume");
  socket.dropConnection();
  const info = await back;
  out.recovered = info.recovered;
  out.resumedOn = info.transport;
  const news2 = next((r) => (onNews = r), "a room event after the resume");
  await socket.call("to_room", { event: "news", room, data: { n: 2 } });
  out.news2 = await news2;
  return out;
}
