// Errors thrown or rejected by the client. Every one derives from AnywireError, so one
// `instanceof AnywireError` check catches anything the client raises on purpose.

/** Base class of every client error. */
export class AnywireError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The server answered a request with an error ack: `code` is machine-readable
 * ("handler_error", "no_handler", "forbidden", "bad_request"...), `message` is the
 * server's human-readable text (possibly ""). */
export class AckError extends AnywireError {
  /** @param {string} code @param {string} [message] */
  constructor(code, message = "") {
    super(message);
    /** @type {string} */ this.code = code;
  }

  toString() {
    return `${this.name}: ${this.code}${this.message ? `: ${this.message}` : ""}`;
  }
}

/** No ack arrived in time. The frame itself stays queued and may still be processed:
 * only the wait is over. */
export class AckTimeout extends AnywireError {}

/** The session that received this request was lost before it answered (its server
 * node failed, the resume window passed): the server may or may not have processed the
 * request, and no answer will come. Rejected at once when the socket's next session
 * starts, instead of waiting for a timeout. (Requests the old session had not received
 * yet are sent again and answered as usual; joins are always sent again.) */
export class RequestLost extends AnywireError {}

/** `maxQueue` frames already await the server's confirmation; the new one was not queued. */
export class QueueFull extends AnywireError {}

/** The encoded frame is larger than the server's `max_frame_size`; it was not queued. */
export class FrameTooLarge extends AnywireError {}

/** The socket is closed for good: by close(), by a terminal close code from the server
 * (`code`, `reason`), or because reconnecting is disabled. */
export class ConnectionClosed extends AnywireError {
  /** @param {number|null} [code] @param {string} [reason] */
  constructor(code = null, reason = "") {
    super(`connection closed${code != null ? ` (${code})` : ""}${reason ? `: ${reason}` : ""}`);
    /** @type {number|null} */ this.code = code;
    /** @type {string} */ this.reason = reason;
  }
}

/** The peer broke the protocol (malformed message, invalid frame, sequence gap).
 * `code` is the close code describing it (4502 unless said otherwise). */
export class ProtocolError extends AnywireError {
  /** @param {string} message @param {number} [code] */
  constructor(message, code = 4502) {
    super(message);
    this.code = code;
  }
}
