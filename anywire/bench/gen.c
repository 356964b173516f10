/* anywire bench load generator: one epoll loop, many lean connections.
 *
 * Speaks just enough of three dialects to hold connections and count what arrives:
 *   anywire  negotiate, then WebSocket (JSON text), SSE or long-poll (JSON)
 *   sio      Engine.IO v4 / Socket.IO v5 over WebSocket or polling
 *   raw      a bare WebSocket (the raw ASGI limit app)
 * Every benchmark message carries "ts":<microseconds of CLOCK_MONOTONIC>, stamped by the
 * publisher (fan-out) or by this program (echo); a delivery is one "ts" seen, its latency
 * now - ts. Python's time.monotonic() reads the same clock, so no clock sync is needed.
 *
 * Receipts (anywire WebSocket clients): by default the rule negotiate advertises
 * ("rx": {"frames","bytes","ms"}, docs/protocol.md 6.4): a threshold drawn after every
 * receipt from [ceil(F/2), F], and bytes and time scaled by the same fraction; the time
 * limit is checked on each message and by a sweep every RX_SWEEP_US. Without the field,
 * every 16 frames. --rx-every N (N > 0) forces a fixed count instead (comparisons);
 * --rx-every 0 sends none (what receipts cost; no real client may do it). SSE clients
 * send no rx (they would POST them); long-poll acknowledges with ack= on every poll.
 *
 * Protocol with the driver (stdout/stdin, one line each):
 *   -> READY {"ready":..,"failed":..,"connect_secs":..}   when every connection is set up
 *   <- GO <secs>                                           measure for secs seconds
 *   -> RESULT {...}                                        then exit
 * Progress goes to stderr once a second. Built by anywire.bench.generator (gcc -O2).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { K_WS, K_SSE, K_POLL };
enum { D_ANYWIRE, D_SIO, D_RAW };
enum { W_FANOUT, W_ECHO, W_IDLE };
/* connection phases */
enum {
  P_CONNECTING, P_NEG, P_UPGRADE, P_WS_OPEN, P_SIO_OPEN, P_SIO_CONNECT, P_SSE_OPEN,
  P_POLL_OPEN, P_READY, P_DEAD
};

typedef struct {
  int fd, kind, phase, id;
  char *buf; size_t len, cap;          /* unparsed input */
  char *out; size_t olen, ocap;        /* unsent output */
  char *body; size_t blen, bcap;       /* a chunked response body being collected */
  /* HTTP response state */
  int in_body, status, chunked, polling;
  long clen, chunk_left;
  char token[512], ticket[512], sid[128];
  long long last_s, seq_count, rx_sent_at;
  int rx_frames, rx_bytes_max, rx_ms;  /* the advertised rule (rx_frames 0: none) */
  int rx_threshold; double rx_u;       /* this stretch's draw */
  long long rx_bytes, rx_owed_since;   /* bytes since the last rx; when frames became owed (us, 0: none) */
  unsigned rng;                        /* xorshift32 state, seeded by the connection id */
  int s_out, waiting;                  /* echo: frames sent, awaiting a reply */
  char carry[8]; int carry_len;        /* partial "ts" marker across stream reads */
} conn_t;

static const char *host = "127.0.0.1";     /* IPv4 address to connect to */
static const char *vhost = NULL;            /* Host header (--vhost; default: host) */
static char auth_header[1100] = "";         /* from ANYWIRE_BENCH_TOKEN, never argv */
static int port = 8000, dialect = D_ANYWIRE, workload = W_FANOUT, rx_every = -1; /* -1: advertised */
static int concurrency = 256, echo_size = 100;
static conn_t *conns; static int nconns;
static int epfd;
static int measuring = 0, ready = 0, failed = 0, pending_setup = 0, next_to_open = 0;
static long long deliveries = 0, errors = 0, closed_early = 0, bytes_in = 0, rx_sent = 0;
static char first_error[256] = "";
#define NB 2600
static long long hist[NB], lat_max = 0, lat_n = 0;
static char pad[4096];

static long long now_us(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}
static double cpu_secs(void) {
  struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
static int bucket(long long us) {
  if (us < 0) us = 0;
  if (us < 1024) return (int)us;
  int b = 1024 + (int)(log((double)us / 1024.0) / log(1.01));
  return b >= NB ? NB - 1 : b;
}
static long long bucket_value(int b) {
  if (b < 1024) return b;
  return (long long)(1024.0 * pow(1.01, b - 1024 + 1));
}
static void record(long long lat) {
  hist[bucket(lat)]++; lat_n++; if (lat > lat_max) lat_max = lat;
}
static long long percentile(double p) {
  if (!lat_n) return 0;
  long long want = (long long)ceil(p * lat_n), seen = 0;
  for (int b = 0; b < NB; b++) { seen += hist[b]; if (seen >= want) return bucket_value(b) < lat_max ? bucket_value(b) : lat_max; }
  return lat_max;
}

static void fail(conn_t *c, const char *fmt, ...) {
  errors++;
  if (!first_error[0]) { va_list ap; va_start(ap, fmt); vsnprintf(first_error, sizeof first_error, fmt, ap); va_end(ap); }
  if (c->phase != P_READY) { failed++; pending_setup--; } else { closed_early++; ready--; }
  c->phase = P_DEAD;
  if (c->fd >= 0) { epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; }
}

/* -- output ---------------------------------------------------------------------------- */
static void want_out(conn_t *c, int on) {
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = (unsigned)c->id};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}
static void flush_out(conn_t *c) {
  while (c->olen) {
    ssize_t n = write(c->fd, c->out, c->olen);
    if (n < 0) { if (errno == EAGAIN) { want_out(c, 1); return; } fail(c, "write: %s", strerror(errno)); return; }
    memmove(c->out, c->out + n, c->olen - n); c->olen -= n;
  }
  want_out(c, 0);
}
static void put(conn_t *c, const void *data, size_t n) {
  if (c->olen + n > c->ocap) { c->ocap = (c->olen + n) * 2; c->out = realloc(c->out, c->ocap); }
  memcpy(c->out + c->olen, data, n); c->olen += n;
}
static void send_bytes(conn_t *c, const void *data, size_t n) {
  int had = c->olen > 0; put(c, data, n); if (!had) flush_out(c);
}
static void sendf(conn_t *c, const char *fmt, ...) {
  char tmp[8192]; va_list ap; va_start(ap, fmt); int n = vsnprintf(tmp, sizeof tmp, fmt, ap); va_end(ap);
  send_bytes(c, tmp, (size_t)n);
}
/* A masked client frame; the zero mask leaves the payload as is. */
static void ws_send(conn_t *c, int opcode, const char *data, size_t n) {
  unsigned char h[14]; size_t hl = 0;
  h[hl++] = 0x80 | opcode;
  if (n < 126) h[hl++] = 0x80 | n;
  else if (n < 65536) { h[hl++] = 0x80 | 126; h[hl++] = n >> 8; h[hl++] = n & 255; }
  else { h[hl++] = 0x80 | 127; for (int i = 7; i >= 0; i--) h[hl++] = (n >> (8 * i)) & 255; }
  memset(h + hl, 0, 4); hl += 4;
  int had = c->olen > 0; put(c, h, hl); put(c, data, n); if (!had) flush_out(c);
}
static void ws_sendf(conn_t *c, const char *fmt, ...) {
  char tmp[8192]; va_list ap; va_start(ap, fmt); int n = vsnprintf(tmp, sizeof tmp, fmt, ap); va_end(ap);
  ws_send(c, 1, tmp, (size_t)n);
}

/* -- scanning payloads ------------------------------------------------------------------- */
/* Count every "ts":N in [p, p+n); returns how many. Records latency when measuring. */
static long long scan_ts(const char *p, size_t n, long long now) {
  long long found = 0; const char *end = p + n;
  while (p < end) {
    const char *m = memmem(p, end - p, "\"ts\":", 5);
    if (!m) break;
    const char *d = m + 5; long long v = 0;
    while (d < end && *d >= '0' && *d <= '9') v = v * 10 + (*d++ - '0');
    found++;
    if (measuring) { deliveries++; record(now - v); }
    p = d;
  }
  return found;
}
/* The highest "s":N in the payload, and how many there were (anywire sequenced frames). */
static void scan_seq(conn_t *c, const char *p, size_t n) {
  const char *end = p + n;
  while (p < end) {
    const char *m = memmem(p, end - p, "\"s\":", 4);
    if (!m) break;
    const char *d = m + 4; long long v = 0;
    while (d < end && *d >= '0' && *d <= '9') v = v * 10 + (*d++ - '0');
    if (v > c->last_s) c->last_s = v;
    c->seq_count++; p = d;
  }
}
/* Streams (SSE): a marker may straddle two reads; keep a short tail for the next one. */
static long long scan_stream(conn_t *c, const char *p, size_t n, long long now) {
  char tmp[16 + 8]; long long found = 0;
  if (c->carry_len) {
    size_t k = n < 16 ? n : 16;
    memcpy(tmp, c->carry, c->carry_len); memcpy(tmp + c->carry_len, p, k);
    const char *m = memmem(tmp, c->carry_len + k, "\"ts\":", 5);
    if (m && m < tmp + c->carry_len) { /* a marker that began in the carry */
      const char *d = m + 5; const char *e = tmp + c->carry_len + k; long long v = 0;
      while (d < e && *d >= '0' && *d <= '9') v = v * 10 + (*d++ - '0');
      found++; if (measuring) { deliveries++; record(now - v); }
      size_t skip = (size_t)(d - tmp) - c->carry_len; p += skip; n -= skip;
    }
    c->carry_len = 0;
  }
  found += scan_ts(p, n, now);
  size_t keep = n < 4 ? n : 4; memcpy(c->carry, p + n - keep, keep); c->carry_len = (int)keep;
  return found;
}

/* -- echo -------------------------------------------------------------------------------- */
static void echo_send(conn_t *c) {
  long long ts = now_us(); c->s_out++; c->waiting = 1;
  if (dialect == D_ANYWIRE)
    ws_sendf(c, "{\"t\":\"event\",\"s\":%d,\"id\":%d,\"e\":\"echo\",\"d\":{\"ts\":%lld,\"p\":\"%s\"}}", c->s_out, c->s_out, ts, pad);
  else if (dialect == D_SIO)
    ws_sendf(c, "42%d[\"echo\",{\"ts\":%lld,\"p\":\"%s\"}]", c->s_out, ts, pad);
  else
    ws_sendf(c, "{\"ts\":%lld,\"p\":\"%s\"}", ts, pad);
}

/* -- receipts ------------------------------------------------------------------------------ */
#define RX_SWEEP_US 5000
static double rx_draw(conn_t *c) {
  unsigned x = c->rng ? c->rng : 2463534242u;
  x ^= x << 13; x ^= x >> 17; x ^= x << 5; c->rng = x;
  return (x >> 8) / 16777216.0;
}
/* A new stretch: draw this stretch's threshold (fixed with --rx-every N or no rule). */
static void rx_start(conn_t *c) {
  c->rx_bytes = 0; c->rx_owed_since = 0;
  if (rx_every >= 0 || !c->rx_frames) { c->rx_threshold = rx_every > 0 ? rx_every : 16; c->rx_u = 1; return; }
  int low = (c->rx_frames + 1) / 2, span = c->rx_frames - low;
  int k = (int)(rx_draw(c) * (span + 1)); if (k > span) k = span;
  c->rx_threshold = low + k; c->rx_u = (double)c->rx_threshold / c->rx_frames;
}
static void rx_send(conn_t *c) {
  c->rx_sent_at = c->seq_count; ws_sendf(c, "{\"t\":\"rx\",\"n\":%lld}", c->last_s); rx_start(c);
  if (measuring) rx_sent++;
}
/* After a message (or from the sweep, size 0): send rx if the rule says so. */
static void rx_check(conn_t *c, long long now) {
  if (rx_every == 0 || c->kind != K_WS || c->phase != P_READY) return;
  long long owed = c->seq_count - c->rx_sent_at;
  if (owed <= 0) return;
  if (owed >= c->rx_threshold) { rx_send(c); return; }
  int advertised = rx_every < 0 && c->rx_frames;
  if (advertised && c->rx_bytes_max && c->rx_bytes >= c->rx_bytes_max * c->rx_u) { rx_send(c); return; }
  if (!advertised || !c->rx_ms) return;
  if (!c->rx_owed_since) c->rx_owed_since = now;
  if (now - c->rx_owed_since >= (long long)(c->rx_ms * 1000.0 * c->rx_u)) rx_send(c);
}
static void rx_sweep(long long now) {
  static long long last = 0;
  if (now - last < RX_SWEEP_US) return;
  last = now;
  for (int i = 0; i < nconns; i++) if (conns[i].rx_owed_since) rx_check(&conns[i], now);
}
/* The "rx" object of a negotiate answer, if any. */
static void rx_parse(conn_t *c, const char *p, size_t n) {
  c->rx_frames = c->rx_bytes_max = c->rx_ms = 0;
  const char *m = memmem(p, n, "\"rx\"", 4); if (!m) return;
  const char *e = memchr(m, '}', p + n - m); if (!e) return;
  const char *keys[3] = {"\"frames\"", "\"bytes\"", "\"ms\""}; int *vals[3] = {&c->rx_frames, &c->rx_bytes_max, &c->rx_ms};
  for (int k = 0; k < 3; k++) {
    const char *f = memmem(m, e - m, keys[k], strlen(keys[k])); if (!f) continue;
    f += strlen(keys[k]); while (f < e && (*f == ' ' || *f == ':')) f++;
    *vals[k] = atoi(f);
  }
  if (c->rx_frames < 1) c->rx_frames = 0;
}

/* -- per-message handling once ready ------------------------------------------------------ */
static void on_ready(conn_t *c) {
  c->phase = P_READY; ready++; pending_setup--;
}
static void on_ws_message(conn_t *c, const char *p, size_t n) {
  long long now = now_us();
  if (c->phase == P_WS_OPEN) {           /* anywire: the hello */
    if (dialect == D_ANYWIRE && memmem(p, n, "\"hello\"", 7)) { on_ready(c); rx_start(c); return; }
    fail(c, "expected hello, got %.*s", (int)(n < 120 ? n : 120), p); return;
  }
  if (c->phase == P_SIO_OPEN) {          /* Engine.IO open packet: connect to "/" */
    if (n && p[0] == '0') { c->phase = P_SIO_CONNECT; ws_send(c, 1, "40", 2); return; }
    fail(c, "expected EIO open, got %.*s", (int)(n < 120 ? n : 120), p); return;
  }
  if (c->phase == P_SIO_CONNECT) {
    if (n >= 2 && p[0] == '4' && p[1] == '0') { on_ready(c); return; }
    if (n == 1 && p[0] == '2') { ws_send(c, 1, "3", 1); return; }
    fail(c, "expected SIO connect, got %.*s", (int)(n < 120 ? n : 120), p); return;
  }
  if (dialect == D_SIO && n == 1 && p[0] == '2') { ws_send(c, 1, "3", 1); return; }
  long long got = scan_ts(p, n, now);
  if (dialect == D_ANYWIRE) {
    if (memmem(p, n, "\"t\":\"ping\"", 10)) ws_sendf(c, "{\"t\":\"pong\"}");
    scan_seq(c, p, n);
    c->rx_bytes += (long long)n;
    rx_check(c, now);
  }
  if (workload == W_ECHO && got && c->waiting) { c->waiting = 0; if (measuring) echo_send(c); }
}

static void poll_request(conn_t *c) {
  if (dialect == D_ANYWIRE)
    sendf(c, "GET /anywire/poll?ack=%lld HTTP/1.1\r\nHost: %s\r\nX-Anywire-Token: %s\r\n\r\n", c->last_s, vhost, c->token);
  else
    sendf(c, "GET /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n\r\n", c->sid, vhost);
}

static int json_str(const char *p, size_t n, const char *key, char *out, size_t cap) {
  char pat[64]; snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *m = memmem(p, n, pat, strlen(pat)); if (!m) return 0;
  const char *e = p + n; m += strlen(pat);
  while (m < e && (*m == ' ' || *m == ':')) m++;
  if (m >= e || *m != '"') return 0;
  m++;
  size_t k = 0; while (m < e && *m != '"' && k + 1 < cap) out[k++] = *m++;
  out[k] = 0; return 1;
}

/* A whole HTTP response body (content-length or the end of a chunked one). */
static void on_http_body(conn_t *c, const char *p, size_t n) {
  long long now = now_us();
  if (c->status == 101) return;
  if (c->phase == P_NEG) {
    if (c->status != 200 || !json_str(p, n, "ticket", c->ticket, sizeof c->ticket) ||
        !json_str(p, n, "token", c->token, sizeof c->token)) { fail(c, "negotiate %d: %.*s", c->status, (int)(n < 160 ? n : 160), p); return; }
    rx_parse(c, p, n); c->rng = 2654435761u * (unsigned)(c->id + 1);
    if (c->kind == K_WS) {
      c->phase = P_UPGRADE;
      sendf(c, "GET /anywire/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", vhost);
    } else if (c->kind == K_SSE) {
      c->phase = P_SSE_OPEN;
      sendf(c, "GET /anywire/sse?ticket=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", c->ticket, vhost);
    } else {
      c->phase = P_POLL_OPEN;
      sendf(c, "GET /anywire/poll?ticket=%s HTTP/1.1\r\nHost: %s\r\n\r\n", c->ticket, vhost);
    }
    return;
  }
  if (c->phase == P_SIO_OPEN) {          /* polling open: 0{"sid":...} then POST 40 */
    if (c->status != 200 || !json_str(p, n, "sid", c->sid, sizeof c->sid)) { fail(c, "EIO open %d: %.*s", c->status, (int)(n < 160 ? n : 160), p); return; }
    c->phase = P_SIO_CONNECT;
    sendf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n40", c->sid, vhost);
    return;
  }
  if (c->phase == P_SIO_CONNECT) {       /* "ok" for the POST, then the first GET */
    if (c->status != 200) { fail(c, "EIO connect %d", c->status); return; }
    if (n >= 2 && p[0] == '4' && p[1] == '0') { on_ready(c); poll_request(c); return; }
    poll_request(c); return;             /* the POST's "ok": poll for the 40 */
  }
  if (c->phase == P_POLL_OPEN) {
    if (c->status != 200 || !memmem(p, n, "\"hello\"", 7)) { fail(c, "poll open %d: %.*s", c->status, (int)(n < 160 ? n : 160), p); return; }
    scan_seq(c, p, n); on_ready(c); poll_request(c); return;
  }
  if (c->polling) {                      /* a poll answered: count, then poll again */
    if (c->status != 200 && c->status != 204) { fail(c, "poll %d: %.*s", c->status, (int)(n < 160 ? n : 160), p); return; }
    scan_ts(p, n, now);
    if (dialect == D_ANYWIRE) scan_seq(c, p, n);
    else if (memmem(p, n, "\x1e" "2", 2) || (n == 1 && p[0] == '2'))
      sendf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 1\r\n\r\n3", c->sid, vhost);
    poll_request(c);
  }
}

/* SSE: body bytes as they stream (chunk payloads). */
static void on_sse_data(conn_t *c, const char *p, size_t n) {
  if (c->phase == P_SSE_OPEN) {
    if (c->status != 200) { fail(c, "sse %d: %.*s", c->status, (int)(n < 160 ? n : 160), p); return; }
    if (memmem(p, n, "\"hello\"", 7)) on_ready(c);
    return;
  }
  scan_stream(c, p, n, now_us());
}

#define STREAMING(c) ((c)->kind == K_SSE && (c)->phase != P_NEG)
/* Parse as much of c->buf as possible. Returns 0 if the connection died. */
static int parse(conn_t *c) {
  size_t off = 0;
  while (c->phase != P_DEAD) {
    char *p = c->buf + off; size_t n = c->len - off;
    if (!c->in_body && c->status != 101) {            /* HTTP response head */
      char *e = memmem(p, n, "\r\n\r\n", 4); if (!e) break;
      c->status = atoi(p + 9); c->clen = -1; c->chunked = 0; c->chunk_left = -1;
      for (char *h = p; h < e; ) {
        char *nl = memmem(h, e - h, "\r\n", 2); if (!nl) nl = e;
        if (!strncasecmp(h, "content-length:", 15)) c->clen = atol(h + 15);
        if (!strncasecmp(h, "transfer-encoding:", 18) && memmem(h, nl - h, "chunked", 7)) c->chunked = 1;
        h = nl + 2;
      }
      off += (e - p) + 4;
      if (c->status == 101) {
        if (dialect == D_ANYWIRE) { c->phase = P_WS_OPEN;
          ws_sendf(c, "{\"t\":\"connect\",\"ticket\":\"%s\"}", c->ticket); }
        else if (dialect == D_SIO) c->phase = P_SIO_OPEN;
        else on_ready(c);                               /* raw: open means ready */
        continue;
      }
      if (c->status == 204 || c->status == 304) { c->clen = 0; }
      c->in_body = 1;
      if (!c->chunked && c->clen < 0) { fail(c, "response without length (%d)", c->status); return 0; }
      continue;
    }
    if (c->status == 101) {                            /* WebSocket frames */
      if (n < 2) break;
      unsigned char *u = (unsigned char *)p; int op = u[0] & 15; size_t hl = 2; unsigned long long pl = u[1] & 127;
      if (pl == 126) { if (n < 4) break; pl = (u[2] << 8) | u[3]; hl = 4; }
      else if (pl == 127) { if (n < 10) break; pl = 0; for (int i = 0; i < 8; i++) pl = (pl << 8) | u[2 + i]; hl = 10; }
      if (u[1] & 128) hl += 4;                          /* servers do not mask; tolerate it */
      if (n < hl + pl) break;
      bytes_in += hl + pl;
      if (op == 8) { fail(c, "websocket closed by server (%d)", pl >= 2 ? (u[hl] << 8) | u[hl + 1] : 0); return 0; }
      if (op == 9) ws_send(c, 10, p + hl, pl);
      else if (op == 1 || op == 2 || op == 0) on_ws_message(c, p + hl, pl);
      off += hl + pl; continue;
    }
    if (c->chunked) {                                  /* chunked body */
      if (c->chunk_left == -1) {
        char *e = memmem(p, n, "\r\n", 2); if (!e) break;
        c->chunk_left = strtol(p, NULL, 16); off += (e - p) + 2;
        if (c->chunk_left == 0) {                       /* last chunk: trailer CRLF */
          c->chunk_left = -2; continue;
        }
        continue;
      }
      if (c->chunk_left == -2) {
        if (n < 2) break;
        off += 2; c->in_body = 0; c->chunk_left = -1;
        if (!STREAMING(c)) { on_http_body(c, c->body, c->blen); c->blen = 0; }
        continue;
      }
      if (n < (size_t)c->chunk_left + 2) {
        if (STREAMING(c) && c->phase == P_READY && n > 0 && c->chunk_left > 0) {   /* stream big chunks */
          size_t k = n < (size_t)c->chunk_left ? n : (size_t)c->chunk_left;
          on_sse_data(c, p, k); c->chunk_left -= k; off += k; bytes_in += k; continue;
        }
        break;
      }
      bytes_in += c->chunk_left;
      if (STREAMING(c)) on_sse_data(c, p, c->chunk_left);
      else {                                           /* whole body first, then handle it */
        if (c->blen + c->chunk_left > c->bcap) { c->bcap = (c->blen + c->chunk_left) * 2; c->body = realloc(c->body, c->bcap); }
        memcpy(c->body + c->blen, p, c->chunk_left); c->blen += c->chunk_left;
      }
      off += c->chunk_left + 2; c->chunk_left = -1; continue;
    }
    if (n < (size_t)c->clen) break;                    /* content-length body */
    c->in_body = 0; off += c->clen; bytes_in += c->clen;
    on_http_body(c, p, c->clen);
  }
  if (c->phase == P_DEAD) return 0;
  memmove(c->buf, c->buf + off, c->len - off); c->len -= off;
  return 1;
}

/* -- connection setup --------------------------------------------------------------------- */
static void start_conn(conn_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) { c->phase = P_CONNECTING; pending_setup++; fail(c, "socket: %s", strerror(errno)); return; }
  int one = 1; setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  c->phase = P_CONNECTING; pending_setup++;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (unsigned)c->id};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) fail(c, "connect: %s", strerror(errno));
}
static void on_connected(conn_t *c) {
  int err = 0; socklen_t l = sizeof err; getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
  if (err) { fail(c, "connect: %s", strerror(err)); return; }
  if (dialect == D_ANYWIRE) {
    const char *t = c->kind == K_WS ? "websocket" : c->kind == K_SSE ? "sse" : "longpoll";
    char body[128]; int bl = snprintf(body, sizeof body, "{\"v\":1,\"codecs\":[\"json\"],\"transports\":[\"%s\"]}", t);
    c->phase = P_NEG;
    sendf(c, "POST /anywire/negotiate HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", vhost, auth_header, bl, body);
  } else if (dialect == D_SIO && c->kind == K_POLL) {
    c->phase = P_SIO_OPEN; c->polling = 1;
    sendf(c, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n\r\n", vhost);
  } else {
    c->phase = P_UPGRADE;
    sendf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
          dialect == D_SIO ? "/socket.io/?EIO=4&transport=websocket" : "/ws", vhost);
  }
  if (c->kind == K_POLL) c->polling = 1;
}

static void on_event(conn_t *c, unsigned events) {
  if (c->phase == P_DEAD) return;
  if (c->phase == P_CONNECTING) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    on_connected(c); if (c->phase == P_DEAD) return;
    want_out(c, c->olen > 0);
  }
  if (events & EPOLLOUT) flush_out(c);
  if (c->phase == P_DEAD) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    for (;;) {
      if (c->cap - c->len < 65536) { c->cap = c->cap * 2 + 65536; c->buf = realloc(c->buf, c->cap); }
      ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
      if (n > 0) { c->len += n; if (!parse(c)) return; if ((size_t)n < 16384) break; continue; }
      if (n == 0) { fail(c, "closed by server"); return; }
      if (errno == EAGAIN) break;
      fail(c, "read: %s", strerror(errno)); return;
    }
  }
}

static void parse_mix(const char *mix) {
  /* "ws:100,sse:50,poll:50" */
  int counts[3] = {0, 0, 0}; char tmp[256]; snprintf(tmp, sizeof tmp, "%s", mix);
  for (char *tok = strtok(tmp, ","); tok; tok = strtok(NULL, ",")) {
    char *colon = strchr(tok, ':'); if (!colon) continue; *colon = 0; int n = atoi(colon + 1);
    if (!strcmp(tok, "ws")) counts[0] += n; else if (!strcmp(tok, "sse")) counts[1] += n; else if (!strcmp(tok, "poll")) counts[2] += n;
  }
  nconns = counts[0] + counts[1] + counts[2];
  conns = calloc(nconns ? nconns : 1, sizeof(conn_t));
  int i = 0, left[3] = {counts[0], counts[1], counts[2]};
  while (i < nconns) for (int k = 0; k < 3; k++) if (left[k]) { left[k]--; conns[i].id = i; conns[i].fd = -1; conns[i].kind = k; i++; }
}

static void progress(double t, long long last_deliveries, double dt, double cpu0, double wall0) {
  double cpu = (cpu_secs() - cpu0) / (now_us() / 1e6 - wall0);
  fprintf(stderr, "[gen] t=%.0fs conns=%d deliveries=%lld rate=%.0f/s p50~%lldus errors=%lld gen_cpu=%.0f%%\n",
          t, ready, deliveries, (deliveries - last_deliveries) / dt, percentile(0.5), errors, cpu * 100);
}

int main(int argc, char **argv) {
  const char *mix = "ws:10", *dial = "anywire", *work = "fanout";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--vhost")) vhost = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--dialect")) dial = argv[i + 1];
    else if (!strcmp(argv[i], "--workload")) work = argv[i + 1];
    else if (!strcmp(argv[i], "--mix")) mix = argv[i + 1];
    else if (!strcmp(argv[i], "--concurrency")) concurrency = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rx-every")) rx_every = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--size")) echo_size = atoi(argv[i + 1]);
  }
  if (!vhost) vhost = host;
  const char *token = getenv("ANYWIRE_BENCH_TOKEN");
  if (token && *token) snprintf(auth_header, sizeof auth_header, "Authorization: Bearer %s\r\n", token);
  dialect = !strcmp(dial, "sio") ? D_SIO : !strcmp(dial, "raw") ? D_RAW : D_ANYWIRE;
  workload = !strcmp(work, "echo") ? W_ECHO : !strcmp(work, "idle") ? W_IDLE : W_FANOUT;
  int padn = echo_size - 30; if (padn < 1) padn = 1; if (padn > 4000) padn = 4000;
  memset(pad, 'x', padn); pad[padn] = 0;
  struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl); rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl);
  setvbuf(stdout, NULL, _IOLBF, 0);
  parse_mix(mix);
  epfd = epoll_create1(0);
  struct epoll_event evs[512];
  double t0 = now_us() / 1e6;
  /* Phase 1: set every connection up, at most `concurrency` handshakes in flight. */
  while (ready + failed < nconns) {
    while (next_to_open < nconns && pending_setup < concurrency) start_conn(&conns[next_to_open++]);
    int n = epoll_wait(epfd, evs, 512, 1000);
    for (int i = 0; i < n; i++) on_event(&conns[evs[i].data.u32], evs[i].events);
    if (now_us() / 1e6 - t0 > 120) { fprintf(stderr, "[gen] setup timed out\n"); break; }
  }
  double setup = now_us() / 1e6 - t0;
  printf("READY {\"ready\":%d,\"failed\":%d,\"connect_secs\":%.3f,\"first_error\":\"%s\"}\n", ready, failed, setup, failed ? "see stderr" : "");
  if (failed) fprintf(stderr, "[gen] first error: %s\n", first_error);
  /* Phase 2: keep reading (and answering) until GO arrives on stdin. */
  double secs = 0; char line[128];
  struct epoll_event sev = {.events = EPOLLIN, .data.u32 = 0xffffffffu};
  epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sev);
  for (int go = 0; !go;) {
    int n = epoll_wait(epfd, evs, 512, 50);
    rx_sweep(now_us());
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u32 == 0xffffffffu) {
        if (!fgets(line, sizeof line, stdin)) return 0;
        if (!strncmp(line, "GO", 2)) { secs = atof(line + 2); go = 1; }
        else if (!strncmp(line, "QUIT", 4)) return 0;
      } else on_event(&conns[evs[i].data.u32], evs[i].events);
    }
  }
  epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
  /* Phase 3: measure. */
  measuring = 1; errors = 0; first_error[0] = 0;
  double cpu0 = cpu_secs(), w0 = now_us() / 1e6, next = w0 + 1, end = w0 + secs;
  long long last = 0;
  if (workload == W_ECHO) for (int i = 0; i < nconns; i++) if (conns[i].phase == P_READY) echo_send(&conns[i]);
  while (now_us() / 1e6 < end) {
    double left = end - now_us() / 1e6; int ms = (int)(left * 1000) + 1; if (ms > 50) ms = 50;
    int n = epoll_wait(epfd, evs, 512, ms);
    for (int i = 0; i < n; i++) on_event(&conns[evs[i].data.u32], evs[i].events);
    rx_sweep(now_us());
    double t = now_us() / 1e6;
    if (t >= next) { progress(t - w0, last, 1.0, cpu0, w0); last = deliveries; next += 1; }
  }
  measuring = 0;
  double wall = now_us() / 1e6 - w0, cpu = cpu_secs() - cpu0;
  printf("RESULT {\"conns\":%d,\"ready\":%d,\"failed\":%d,\"secs\":%.3f,\"deliveries\":%lld,\"rate\":%.1f,"
         "\"lat_us\":{\"p50\":%lld,\"p90\":%lld,\"p99\":%lld,\"max\":%lld},\"errors\":%lld,\"closed\":%lld,"
         "\"bytes_in\":%lld,\"rx_sent\":%lld,\"gen_cpu\":%.3f,\"connect_secs\":%.3f,\"first_error\":\"",
         nconns, ready, failed, wall, deliveries, deliveries / wall, percentile(0.5), percentile(0.9),
         percentile(0.99), lat_max, errors, closed_early, bytes_in, rx_sent, cpu / wall, setup);
  for (char *e = first_error; *e; e++) if (*e != '"' && *e != '\\' && (unsigned char)*e >= 32) putchar(*e);
  printf("\"}\n");
  return 0;
}
