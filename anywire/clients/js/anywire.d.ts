// Type declarations of the anywire browser client (hand-written; the code is plain ES
// modules with JSDoc). See docs/browser.md for the guide.

export type TransportName = "websocket" | "sse" | "longpoll";
export type CodecName = "msgpack" | "json";
export type State = "connecting" | "connected" | "reconnecting" | "disconnected";

/** Any value both codecs carry: null, boolean, number (finite), bigint (64-bit range),
 * string, bytes, arrays and maps with string keys. Bytes arrive as Uint8Array. */
export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | ArrayBuffer
  | ArrayBufferView
  | Value[]
  | Map<string, Value>
  | { [key: string]: Value | undefined };

/** Where a room (or user) stream stands: [epoch, offset]. */
export type Position = [epoch: string, offset: number];

/** A stream event's place: [stream, epoch, offset]. Stream ids are `room:<ns>:<room>`,
 * `user:<ns>:<user>`, `sess:<ns>:<sid>` and `all:<ns>`. */
export type StreamPosition = [stream: string, epoch: string, offset: number];

/** A place to remember the transport that worked: sessionStorage, or an async store
 * such as React Native's AsyncStorage (getItem/setItem answering Promises). */
export interface TransportStore {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** What can be injected instead of the runtime's globals (tests, or a runtime without them:
 * a transport whose global is missing is not offered to the server). */
export interface Env {
  WebSocket?: unknown;
  EventSource?: unknown;
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: unknown) => void;
  /** Milliseconds, monotonic enough for intervals. */
  now?: () => number;
  /** Uniform in [0, 1): the backoff jitter. */
  random?: () => number;
  storage?: TransportStore | null;
  /** online/offline events, and `document` for visibilitychange. */
  window?: unknown;
}

export interface ConnectOptions {
  /** Base URL of the server: an origin, or one with a path prefix ("https://host/api");
   * "" (default) is the page's origin. */
  url?: string;
  /** Endpoint prefix (default "/anywire"). */
  path?: string;
  /** Returns the bearer credential (a JWT) or null; called before EVERY negotiate, so a
   * refreshed token is used on every reconnect. */
  getToken?: () => string | null | Promise<string | null>;
  /** With getToken: hand the live session a fresh token from it at 80% of the
   * credential's lifetime (an `auth` frame, no reconnect). Default true. */
  refresh?: boolean;
  /** Namespace (default "/"). */
  namespace?: string;
  /** Transports allowed, preferred order (default all three). */
  transports?: TransportName[];
  /** Preferred codec (default "msgpack"; SSE is always JSON). */
  codec?: CodecName;
  /** Milliseconds from negotiate to hello per transport attempt (default 5000). */
  connectTimeout?: number;
  /** Milliseconds without a hello before the next offered transport starts too, with its
   * own ticket; the first hello wins, the others are closed (default 350; null: wait
   * out connectTimeout instead). Resumes are not raced. */
  raceAfter?: number | null;
  /** Default wait for acks in ms (default: the server's ack_timeout). */
  ackTimeout?: number;
  /** Ping interval (ms) to ask for at negotiate; default: the server's. Longer saves
   * battery (fewer wake-ups), granted up to the server's `max_ping_interval`, at the cost
   * of noticing a dead connection later (granted interval + ping_timeout); a shorter one
   * after idle cuts still wins. */
  heartbeat?: number;
  /** Reconnect and resume after drops (default true). */
  reconnect?: boolean;
  /** First backoff ceiling in ms (default 500); full jitter. */
  backoffBase?: number;
  /** Largest backoff in ms (default 10000). */
  backoffMax?: number;
  /** Most frames awaiting the server's confirmation, offline queue included (default 1000). */
  maxQueue?: number;
  /** Pace every message, POST, poll and resume below the flood budget the server
   * advertises (90% of flood_rate, half of flood_burst), by waiting (default true).
   * false: send at once and risk a 4008 close (the socket then backs off and resumes). */
  pace?: boolean;
  /** Remember the transport that worked so the next page load starts there (default true). */
  remember?: boolean;
  /** Where to remember it (default sessionStorage, if available; null: nowhere). */
  storage?: TransportStore | null;
  /** Probe WebSocket in the background when running on a fallback (default true). */
  upgrade?: boolean;
  /** Milliseconds after connecting before the upgrade probe (default 1000). */
  upgradeDelay?: number;
  /** Call close() when the page is unloaded (pagehide, not into the back/forward cache),
   * so the session ends at once instead of after the resume window (default true). */
  closeOnPageHide?: boolean;
  /** Injection for tests; defaults to the globals. */
  env?: Env;
}

/** Second argument of event handlers. */
export interface EventInfo {
  event: string;
  /** The room the event was broadcast to, or null. */
  room: string | null;
  /** [stream, epoch, offset] of a stream event, or null. */
  offset: StreamPosition | null;
  /** The server's request id when it waits for an answer, or null. */
  id: number | null;
}

export type Handler = (data: any, info: EventInfo) => unknown;

export interface Presence {
  sid: string;
  user: string | null;
  meta: any;
}

export interface JoinAnswer {
  room: string;
  /** The room's members, at most the server's presence_limit (100 by default), the
   * joiner always among them. */
  presence: Presence[];
  /** How many members the room has (also those not listed in `presence`). */
  count: number;
  /** True when `presence` lists only some of the members (`count` says how many). */
  partial: boolean;
  /** Where the socket stands in the room's stream: the room's events after it follow. */
  position?: Position;
  /** Present with `since`: whether the history still held everything after it (what it
   * did not is announced by a `$lost` event). */
  recovered?: boolean;
}

/** Data of a `$lost` event: offsets `from`..`to` of `stream` (in `epoch`) will never
 * arrive (`to` null: the count is unknown, the stream's history was replaced). */
export interface LostData {
  stream: string;
  epoch: string;
  from: number;
  to: number | null;
  /** The room, for a room's stream. */
  room?: string;
}

export interface Stats {
  /** Stream events dropped because the socket already had them (their offset, an epoch of
   * the stream it has moved on from, or a `$lost` about one). The server never sends one:
   * it stays 0 unless something is wrong. */
  duplicates: number;
  /** Connections the network cut after an idle time shorter than the heartbeat. */
  idleCuts: number;
  /** How often the server pings this session, in ms (shorter after consistent idle
   * cuts: the socket asks for half the idle time at its next negotiate). */
  pingInterval: number;
}

export interface ConnectInfo {
  sid: string;
  recovered: boolean;
  transport: TransportName;
}

export declare class Socket {
  constructor(options?: ConnectOptions);
  readonly options: Required<ConnectOptions>;
  readonly state: State;
  readonly transport: TransportName | null;
  /** Transports reported as failed to the server, oldest first. */
  readonly failed: TransportName[];
  sid: string | null;
  recovered: boolean | null;
  /** Joined rooms and their presence meta (a copy): rejoined by the socket itself, from
   * where it stood in each, when a reconnection could not resume the session. A join
   * counts once its answer arrives, even after the caller's AckTimeout. */
  readonly rooms: Record<string, any>;
  /** Per room, where the socket stands in the room's stream (a copy). */
  readonly positions: Record<string, Position>;
  /** Where the socket stands in the user's own stream, or null. Every negotiate reports
   * every stream position (`since`), so a fresh session replays what was missed. */
  readonly userPosition: Position | null;
  /** Counters (a copy). */
  readonly stats: Stats;
  lastClose: { code: number; reason: string } | null;
  /** In-band token refresh (null without getToken or with `refresh: false`):
   * `refreshed` counts the refreshes the server accepted. */
  readonly refresher: { readonly refreshed: number } | null;

  /** Registers a handler; returns a function that removes it. The first handler's return
   * value (or resolved Promise) answers a server request. */
  on(event: string, handler: Handler): () => void;
  /** Removes a handler, or every handler of `event` without one. */
  off(event: string, handler?: Handler): void;

  /** Fire-and-forget; queued while offline. Throws QueueFull, FrameTooLarge, TypeError,
   * ConnectionClosed. */
  emit(event: string, data?: Value): void;
  /** Resolves with the server handler's answer; rejects AckTimeout, AckError, RequestLost
   * (the session that received it was lost unanswered), QueueFull, FrameTooLarge,
   * TypeError, ConnectionClosed. */
  call<T = any>(event: string, data?: Value, options?: { timeout?: number }): Promise<T>;
  /** Rejects AckError ("forbidden"), AckTimeout (only the wait ends: the join stays
   * pending and takes effect when its answer comes), RequestLost (left before the answer
   * and the session was lost), and the errors of call(). */
  join(room: string, options?: { meta?: Value; since?: Position | null; timeout?: number }): Promise<JoinAnswer>;
  /** Resolves with {room} (also when the session that received it was lost: a fresh
   * session is in no room). */
  leave(room: string, options?: { timeout?: number }): Promise<{ room: string }>;

  onState(fn: (state: State, stats: Stats) => void): () => void;
  onTransport(fn: (name: TransportName | null) => void): () => void;
  onConnect(fn: (info: ConnectInfo) => void): () => void;
  onDisconnect(fn: (code: number | null, reason: string) => void): () => void;
  onError(fn: (code: number, reason: string) => void): () => void;

  /** Resolves when connected; rejects ConnectionClosed on a terminal failure. */
  ready(): Promise<void>;
  /** Normal close (4500): the session ends, no reconnect. Resolves once the goodbye is written. */
  close(): Promise<void>;
  /** Test helper: kills the live transport without telling the server. */
  dropConnection(): void;
  /** Checks the connection at once (call it when a mobile app returns to the foreground
   * or its network changes): true if the server answered a ping within `timeout` ms
   * (default 3000, at most ping_timeout); otherwise the socket reconnects and resumes now
   * and it resolves false. Not connected: a reconnect backoff ends now; resolves false. */
  checkNow(options?: { timeout?: number }): Promise<boolean>;
}

export declare function connect(options?: ConnectOptions): Socket;

export declare const TRANSPORTS: Readonly<Record<TransportName, unknown>>;
export declare const PROTOCOL_VERSION: 1;
export declare const VERSION: string;

export declare function shouldReconnect(code: number): boolean;

export interface Codec {
  readonly name: CodecName;
  readonly binary: boolean;
  readonly contentType: string;
  encode(value: Value): string | Uint8Array;
  decode(data: string | Uint8Array | ArrayBuffer): any;
}
export declare const jsonCodec: Codec;
export declare const msgpackCodec: Codec;

export declare class AnywireError extends Error {}
export declare class AckError extends AnywireError {
  constructor(code: string, message?: string);
  /** "handler_error", "no_handler", "forbidden", "bad_request", ... */
  readonly code: string;
  /** The server's message (possibly ""). */
  readonly message: string;
}
export declare class AckTimeout extends AnywireError {}
/** The session that received the request was lost before answering: it may or may not
 * have run, and no answer will come. */
export declare class RequestLost extends AnywireError {}
export declare class QueueFull extends AnywireError {}
export declare class FrameTooLarge extends AnywireError {}
export declare class ConnectionClosed extends AnywireError {
  constructor(code?: number | null, reason?: string);
  readonly code: number | null;
  readonly reason: string;
}
export declare class ProtocolError extends AnywireError {
  constructor(message: string, code?: number);
  readonly code: number;
}
