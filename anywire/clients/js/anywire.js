// anywire browser client: real-time messaging over WebSocket, SSE or long-polling.
// Plain ES modules, no dependencies, no build step. See docs/browser.md.
//
//   import { connect } from "/anywire/client/<version>/anywire.js";
//   const socket = connect({ getToken: async () => token });
//   socket.on("chat", (data) => console.log(data));
//   await socket.call("chat", { text: "hi" });

export { Socket, connect, TRANSPORTS } from "./socket.js";
export {
  AckError, AckTimeout, AnywireError, ConnectionClosed, FrameTooLarge, ProtocolError, QueueFull, RequestLost,
} from "./errors.js";
export { shouldReconnect } from "./closecodes.js";
export { jsonCodec, msgpackCodec } from "./codec.js";

/** Protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;
/** Version of this client (equal to the Python package's). */
export const VERSION = "0.1.0";
