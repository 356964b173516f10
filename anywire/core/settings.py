"""Every limit and timing of the protocol in one immutable settings object.

All durations are in seconds (floats); they travel to clients in milliseconds. Each limit is
enforced with a documented close code or HTTP status (see docs/protocol.md, "Limits").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .receipts import RxRule

__all__ = ["TRANSPORTS", "Settings"]

TRANSPORTS: tuple[str, ...] = ("websocket", "sse", "longpoll")
"""Every transport, in the default order of preference."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Limits and timings shared by the server, the negotiator and (via negotiate) clients."""

    max_frame_size: int = 64 * 1024
    """Largest encoded frame (or WebSocket message / POST body) accepted, in bytes.
    Exceeding it closes a WebSocket with 4503 MESSAGE_TOO_BIG and answers HTTP with 413."""
    max_batch: int = 100
    """Most frames in one POST batch or one long-poll response."""
    max_depth: int = 32
    """Deepest nesting of maps and arrays in one client frame, its own map counting as
    level 1 (so event data may nest 31 levels), and in a negotiate body. Default 32.
    Deeper: the frame is refused like any invalid one (``error`` 4502, or an error ack
    when it carried ``id``; POST: 400/4502); a body nested beyond the decoder's own
    bound (about 1,000 levels) is refused whole the same way."""
    resume_window: float = 30.0
    """How long a disconnected session is kept so the client can resume it."""
    ping_interval: float = 20.0
    """The server pings WebSocket and SSE clients this often (shorter than common 30-60 s
    proxy idle timeouts)."""
    min_ping_interval: float = 5.0
    """Shortest ping interval a client may ask for at negotiate (negotiate body
    ``ping_interval``, protocol section 3.1), e.g. behind a proxy that cuts idle
    connections sooner than ``ping_interval``. Default 5 s. A shorter request is raised
    to this (no error: the response's ``ping_interval`` says what the session uses); a
    malformed one is refused with 400/4502."""
    max_ping_interval: float | None = None
    """Longest ping interval a client may ask for at negotiate (battery profile: a
    mobile client trades detection time for fewer wake-ups). None (default): the
    server's ``ping_interval``, so nobody gets a longer one unless the operator allows
    it. A longer request is lowered to this. A client granted a longer interval is
    declared dead only after ``granted + ping_timeout`` of silence, and its long polls
    are held up to the granted interval (keep this below your proxies' read timeout).
    Must not be below ``ping_interval`` (ValueError)."""
    ping_timeout: float = 10.0
    """A peer silent for ping_interval + ping_timeout is dead (4001 PING_TIMEOUT)."""
    poll_window: float = 20.0
    """Longest time a long-poll request is held before it answers 204 (below typical
    25-30 s proxy limits)."""
    outbox_size: int = 1000
    """Most unacknowledged server frames kept per session: the bounded send queue and
    replay buffer in one. On overflow the oldest are dropped; if the connection had not
    even been given them it is closed with 4002 SLOW_CONSUMER, and a resume that needs
    them gets ``recovered: false``."""
    outbox_bytes: int = 1024 * 1024
    """Most bytes of unacknowledged server frames kept per session (default 1 MiB, each
    frame counted at its encoded size; control answers such as join and ack answers
    included). The outbox is bounded by ``outbox_size`` and by this, whichever is hit
    first, with the same consequences: the oldest frames are dropped, 4002
    SLOW_CONSUMER if the connection had not been given them (the session stays
    resumable; a resume needing them gets ``recovered: false``). The newest frame is
    always kept, however large."""
    max_meta_size: int = 1024
    """Largest presence metadata (``meta`` of a client's join) in bytes, encoded (default
    1024). Larger metadata is refused with an error ack ``bad_request`` (the frame's
    close-code family is 4502) and nothing of it is kept."""
    presence_limit: int = 100
    """Most members listed in a join answer's ``presence`` (default 100). The answer
    always says ``count`` (every member); ``partial: true`` when the list was cut."""
    rx_wait: float = 5.0
    """Longest time a client keeps received frames unacknowledged (default 5 s; the
    ``ms`` of the receipt rule negotiate advertises, :meth:`client_rx`; each client
    waits a drawn share of it between half and all, protocol section 6.4). It bounds
    how long a frame the client has stays in the outbox (at most a quarter of it in any
    case: the rule's counts), and below ``outbox_size / 4 / rx_wait`` events a second
    per client (50 by default) it is what sets the receipts' pace: shorter means more
    receipts, and a receipt costs the server about as much CPU as a few deliveries (at
    1 event/s and 5 s, one receipt per 2.5 to 5 events; at 1 s, one per event)."""
    ack_delay: float = 0.1
    """Longest time the server keeps a client frame unacknowledged when it has nothing
    else to write (acknowledgements ride along with other frames whenever possible)."""
    ticket_ttl: float = 30.0
    """Lifetime of a connection ticket issued by negotiate (single use)."""
    connect_timeout: float = 10.0
    """How long a WebSocket may stay open without sending its connect/resume frame."""
    ack_timeout: float = 10.0
    """Default wait for an acknowledgement, on either side."""
    stream_history: int = 1000
    """Events kept per room and per user stream for stream-level recovery."""
    flood_rate: float = 200.0
    """Default 200. Tokens per second refilling each session's flood budget (a token
    bucket kept across resumes). Everything a client makes the server do costs tokens:
    a message one per frame (at least one: an empty batch costs one), a WebSocket ping
    or pong one, a long-poll request one, a resume 10 (``core.flood.RESUME_COST``).
    Past the budget a WebSocket is closed with 4008 FLOOD (the session is kept: resume
    after backoff) and an HTTP request is answered 429 with ``Retry-After`` and the JSON
    error code 4008; refusals are charged too (the budget goes into debt). Advertised by
    negotiate; the clients pace themselves below it (protocol section 13.4)."""
    flood_burst: int = 1000
    """Default 1000. Size of the flood budget: what a client may spend at once. A
    WebSocket that has not sent its first message yet has a budget of its own of this
    size and rate for its pings and pongs."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed for browsers; empty allows only same-origin and non-browser callers.
    ``"*"`` allows every origin."""
    allowed_hosts: tuple[str, ...] = ()
    """Host header values this server answers to (default empty: any Host). A pattern
    is a host name (``"chat.example.com"``, matched without the port, case-insensitively),
    ``".example.com"`` (that domain and every subdomain) or ``"*"`` (any). Set it in
    production: with any Host accepted, a DNS-rebinding page whose name resolves to this
    server passes the same-origin rule (its Origin equals its own Host). A request with
    another Host is refused with HTTP 400 and code 4502 (a WebSocket upgrade with 403);
    the health and metrics endpoints are exempt."""
    transports: tuple[str, ...] = field(default=TRANSPORTS)
    """Enabled transports, in the server's order of preference."""
    max_sessions: int = 10_000
    """Most sessions on this node, tickets issued and not yet redeemed included (default
    10,000). Past it negotiate answers 503, ``Retry-After``, code 4000 (protocol 3.6)."""
    max_sessions_per_user: int = 100
    """Most sessions of one user on this node, counted like ``max_sessions`` (default
    100; per node also with Redis): 503, ``Retry-After``, code 4000."""
    max_sessions_per_ip: int = 1000
    """Most sessions of one client address (an IPv6 one: its /64) on this node (default
    1,000): 503, ``Retry-After``, code 4000. The address is the socket peer, or what a
    trusted proxy forwarded (uvicorn's ``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default)."""
    negotiate_rate: float = 20.0
    """Negotiations per second allowed per client address (default 20; a token bucket
    checked before anything else): 429, ``Retry-After``, code 4008."""
    negotiate_burst: int = 100
    """Bucket size of the per-address negotiate limiter (default 100)."""
    busy_retry_after: float = 5.0
    """The ``Retry-After`` (seconds, rounded up) of a 503 for a session cap (default 5)."""
    shed_lag: float = 0.5
    """Load shedding (default 0.5 s; 0: off): while the server's event loop runs more than
    this many seconds late, negotiate answers 503 busy (code 4000) at once, with a
    ``Retry-After`` spread at random, so a reconnect storm the node cannot serve within
    its clients' connect timeout queues up outside instead of collapsing it (protocol
    section 3.6, server/overload.py)."""
    resume_stretch: float = 3.0
    """A node's own overload does not run out resume windows (default 3; 1: off): while
    it sheds load (``shed_lag``), the resume window of every session waiting to be
    resumed stands still, up to this many windows in all (a 30 s window lasts at most
    90 s then). Memory stays bounded: a waiting session holds its ``max_sessions`` slot
    and its bounded outbox either way (core/stall.py)."""
    redis_url: str | None = None
    """``redis://host:port/db`` of the shared broker for several nodes (None: the
    embedded in-memory broker, one node). The CLI's ``--redis`` sets it too."""
    route_linger: float = 5.0
    """With Redis: seconds a node stays subscribed to a stream after its last local
    consumer left it (a leave and rejoin, a reconnecting session, cost no resubscribe).
    A node subscribes only to the streams its sessions consume (docs/scaling.md)."""
    shutdown_timeout: float = 2.0
    """Longest a graceful stop (SIGTERM) spends draining the node: its clients are told to
    move (4000), their sessions end, the broker stops. ``anywire serve`` then exits within
    one more second."""
    node_heartbeat: float = 1.0
    """With Redis: how often each node proves it is alive. A node silent for 3 heartbeats
    is suspected, and declared dead 2 heartbeats later: its presence is removed and the
    requests forwarded to it are answered at once (docs/scaling.md)."""

    ws_deflate: bool = False
    """Let WebSocket clients negotiate permessage-deflate (RFC 7692) under ``anywire
    serve`` (default off; ``--ws-deflate`` or ``ANYWIRE_WS_DEFLATE=1`` turns it on). It
    shrinks text-heavy messages for metered links, at a cost the default would make every
    deployment pay: each connection keeps its own compressor and decompressor (some 48 KB
    more per connection that carried traffic), and each delivery is compressed once per
    recipient instead of being encoded once per room: 1.4 to 1.9 times the CPU per delivery
    (docs/benchmarks.md, bandwidth section). Clients that do not offer it get plain
    frames either way."""

    doctor: bool = False
    """Serve the transport doctor's probe endpoints and page under ``{path}/doctor``
    (default off; ``anywire serve --doctor`` turns it on). They are cheap and capped
    (docs/doctor.md), but they are for diagnosing a deployment, not for every day."""

    api_rate: float = 1000.0
    """Default 1000. Publishes per second each server API key may make on one node
    (``POST {path}/publish``: a batch costs one per item; a read one), refilling a token
    bucket of ``api_burst``. Past it: HTTP 429 with ``Retry-After`` and nothing of the
    request published (docs/publish-api.md). Not advertised to clients."""
    api_burst: int = 1000
    """Default 1000. Size of each API key's budget: what a backend may publish at once
    (a batch larger than it costs the whole budget, so it passes when the budget is
    full)."""

    def __post_init__(self) -> None:
        if not self.resume_stretch >= 1.0:
            raise ValueError("resume_stretch must be at least 1 (1: no stretch)")
        if not self.rx_wait > 0:
            raise ValueError("rx_wait must be positive")
        if not self.api_rate > 0 or self.api_burst < 1:
            raise ValueError("api_rate must be positive and api_burst at least 1")
        if self.max_ping_interval is not None and self.max_ping_interval < self.ping_interval:
            raise ValueError(
                f"max_ping_interval ({self.max_ping_interval}) must not be below "
                f"ping_interval ({self.ping_interval})"
            )

    @property
    def ping_ceiling(self) -> float:
        """The longest ping interval a client may be granted (``max_ping_interval``, or
        ``ping_interval`` when unset)."""
        return self.ping_interval if self.max_ping_interval is None else self.max_ping_interval

    def client_rx(self) -> RxRule:
        """The receipt rule negotiate advertises (protocol section 6.4), derived from the
        outbox bounds: a quarter of each (250 frames and 256 KiB by default), and
        ``rx_wait``. A receipt only lets the server forget frames the client already has:
        what is replayed after a drop is decided by the client's own position
        (``resume.last``), and trimming a full outbox drops the oldest frames, the
        received ones, first (4002 comes only when frames never written are dropped). So
        the rule trades the node's CPU (a receipt costs about as much as a few
        deliveries) against memory: a client that keeps up holds at most a quarter of
        either bound unacknowledged (on average 0.39 of the count, while the count rules),
        and never more than ``rx_wait`` worth of its stream."""
        return RxRule(
            frames=max(1, self.outbox_size // 4),
            bytes=max(1, self.outbox_bytes // 4),
            ms=max(1, int(self.rx_wait * 1000)),
        )

    def timings_ms(self) -> dict[str, int]:
        """The timings a client needs, in milliseconds, as sent by negotiate."""
        return {
            "ping_interval": int(self.ping_interval * 1000),
            "ping_timeout": int(self.ping_timeout * 1000),
            "poll_window": int(self.poll_window * 1000),
            "resume_window": int(self.resume_window * 1000),
            "ack_timeout": int(self.ack_timeout * 1000),
        }
