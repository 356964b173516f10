// Close codes decide by range (docs/protocol.md section 12): 4000-4499 reconnect,
// 4500-4999 terminal. Standard WebSocket codes map onto the same decision.

/** The server is shutting down or shedding load: reconnect (after retry_after, if given). */
export const SHUTDOWN = 4000;
export const NORMAL = 4500;
export const UNAUTHORIZED = 4501;
export const FORBIDDEN = 4505;
export const TRANSPORT_REPLACED = 4005;
/** The flood budget was spent: the session is kept; reconnect after backoff and resume.
 * (4506, the old terminal flood code, is retired.) */
export const FLOOD = 4008;
/** Codes that, while opening a transport, mean "negotiate again" rather than "failed". */
export const RENEGOTIATE = new Set([4000, 4004, 4007]);

const TERMINAL_WS = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]);

/** Whether a client that saw close code `code` should reconnect on its own.
 * @param {number} code @returns {boolean} */
export function shouldReconnect(code) {
  if (code >= 4000 && code <= 4499) return true;
  if (code >= 4500 && code <= 4999) return false;
  return !TERMINAL_WS.has(code);
}
