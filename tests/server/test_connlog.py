"""Connection log lines, the JSON format and the secret scrubber, driven directly.

The end-to-end check (a real server, real traffic on every transport, every credential
that crossed the wire looked for in its stderr) is tests/e2e/test_logs_full_run.py.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from websockets.frames import Frame, Opcode

from anywire.clients.python import Client
from anywire.server.app import Anywire
from anywire.server.cli import log_args
from anywire.server.connlog import ConnLog
from anywire.server.logs import ScrubSecrets, configure, scrub, scrub_uvicorn
from anywire.server.observe import Connection

CONN = Connection("s1", "sse", "/", "alice", "http://app.example", "10.0.0.7")


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """What configure() writes, for one test; the root logger restored afterwards.

    uvicorn's loggers start as in a fresh process (no level, no handler, propagating): an
    in-process uvicorn.Config made earlier in the same interpreter (tests/server/
    test_wsstate.py's, with "warning") leaves its levels and its own non-propagating
    handler on them, which would keep a TRACE record from configure()'s handler."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    conn_level = logging.getLogger("anywire.conn").level
    uvicorn = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    saved = [(log.level, log.propagate, list(log.handlers)) for log in uvicorn]
    for log in uvicorn:
        log.setLevel(logging.NOTSET)
        log.propagate, log.handlers = True, []
    stream = io.StringIO()
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("anywire.conn").setLevel(conn_level)
    for log, (was, propagate, its_handlers) in zip(uvicorn, saved, strict=True):
        log.setLevel(was)
        log.propagate, log.handlers = propagate, its_handlers


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_event_is_one_json_object_with_its_fields_as_keys(output: io.StringIO) -> None:
    configure("json", "DEBUG", stream=output)
    log = ConnLog()
    log.negotiated("ok", ("websocket", "sse"))
    log.connected(CONN, resumed=False)
    log.resumed("recovered")
    log.fallback("websocket", "sse", "timeout")
    log.lost("room:/:a", 3)
    log.auth_failed("expired", "negotiate")
    log.flood_refused(CONN)
    log.closed_for("flood", CONN)
    log.disconnected(CONN, 4008, 12.34567, 40, 2)
    log.broker_state("down")
    lines = _json_lines(output)
    assert [(line["event"], line["level"]) for line in lines] == [
        ("negotiate", "DEBUG"),
        ("connect", "INFO"),
        ("resume", "INFO"),
        ("fallback", "INFO"),
        ("lost", "INFO"),
        ("auth_failed", "WARNING"),
        ("flood", "WARNING"),
        ("closed", "WARNING"),
        ("disconnect", "INFO"),
        ("broker", "WARNING"),
    ]
    connect, disconnect = lines[1], lines[8]
    assert connect["logger"] == "anywire.conn"
    assert {k: connect[k] for k in ("sid", "transport", "user", "origin", "ip", "resumed")} == {
        "sid": "s1", "transport": "sse", "user": "alice", "origin": "http://app.example",
        "ip": "10.0.0.7", "resumed": False,
    }  # fmt: skip
    assert (disconnect["code"], disconnect["duration"]) == (4008, 12.346)
    assert (disconnect["frames_in"], disconnect["frames_out"]) == (40, 2)
    assert (lines[3]["from"], lines[3]["to"], lines[3]["reason"]) == ("websocket", "sse", "timeout")
    assert lines[5]["reason"] == "expired" and lines[6]["sid"] == "s1"
    assert lines[7]["reason"] == "flood"
    assert str(connect["time"]).endswith("Z") and "resumed=false" in str(connect["message"])


def test_undelivered_outcomes_are_lines_at_their_levels(output: io.StringIO) -> None:
    configure("json", "DEBUG", stream=output)
    log = ConnLog()
    for outcome in ("called", "failed", "duplicate"):
        log.undelivered(outcome, "/chat", "bob", "note")
    lines = _json_lines(output)
    assert [(line["event"], line["outcome"], line["level"]) for line in lines] == [
        ("undelivered", "called", "INFO"),
        ("undelivered", "failed", "WARNING"),
        ("undelivered", "duplicate", "DEBUG"),
    ]
    assert {(line["namespace"], line["user"], line["event_name"]) for line in lines} == {
        ("/chat", "bob", "note")
    }


def test_text_lines_carry_the_same_fields_and_stay_one_line(output: io.StringIO) -> None:
    configure("text", "INFO", stream=output)
    odd = Connection("s2", "longpoll", "/", None, 'http://x.example\n"forged"', None)
    ConnLog().connected(odd, resumed=True)
    ConnLog().disconnected(CONN, 1000, 1.5, 3, 4)
    lines = output.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "INFO anywire.conn connect sid=s2 transport=longpoll namespace=/ user=- "
        'origin="http://x.example\\n\\"forged\\"" ip=- resumed=true'
    )
    assert lines[1].endswith("code=1000 duration=1.5 frames_in=3 frames_out=4")


def test_levels_are_configurable(output: io.StringIO) -> None:
    configure("json", "DEBUG", stream=output, conn_level="WARNING")
    ConnLog().connected(CONN, resumed=False)  # INFO: below the connection log's level
    ConnLog().closed_for("slow_consumer", CONN)
    ConnLog(level=logging.ERROR).connected(CONN, resumed=False)
    assert [(line["event"], line["level"]) for line in _json_lines(output)] == [
        ("closed", "WARNING"),
        ("connect", "ERROR"),
    ]


def test_every_anywire_logs_connections_and_scrubs_uvicorn(output: io.StringIO) -> None:
    configure("json", "INFO", stream=output)
    access = logging.getLogger("uvicorn.access")
    for f in [f for f in access.filters if isinstance(f, ScrubSecrets)]:
        access.removeFilter(f)
    aw = Anywire(anonymous=True)
    aw.observers.connected(CONN, False)
    assert [line["event"] for line in _json_lines(output)] == ["connect"]
    assert any(isinstance(f, ScrubSecrets) for f in access.filters)  # `uvicorn app:app`


def test_a_traceback_stays_on_one_json_line(output: io.StringIO) -> None:
    configure("json", "INFO", stream=output)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("anywire").exception("handler failed")
    (line,) = _json_lines(output)
    assert line["message"] == "handler failed" and "RuntimeError: boom" in str(line["exc_info"])


def test_trace_is_a_level_before_uvicorn_names_it(output: io.StringIO) -> None:
    configure("text", "trace", stream=output)
    assert logging.getLogger().level == 5
    logging.getLogger("uvicorn.asgi").log(5, "ASGI [1] Started")
    assert output.getvalue() == "TRACE uvicorn.asgi ASGI [1] Started\n"


def test_unknown_format_and_level_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        configure("yaml")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure("text", "loud")


def test_query_string_secrets_are_masked() -> None:
    line = '10.0.0.1:5 - "GET /anywire/sse?ticket=T.1-x&last=4 HTTP/1.1" 200'
    assert scrub(line) == '10.0.0.1:5 - "GET /anywire/sse?ticket=***&last=4 HTTP/1.1" 200'
    assert scrub("/anywire/poll?ack=3&token=abc") == "/anywire/poll?ack=3&token=***"
    assert scrub("/x?access_token=a&sid=s&api_key=k") == "/x?access_token=***&sid=s&api_key=***"
    assert scrub('{"t":"auth","id":1,"token":"e.y.J"}') == '{"t":"auth","id":1,"token":"***"}'
    assert scrub("/anywire/poll?ack=3") == "/anywire/poll?ack=3"


def _uvicorn_records() -> list[logging.LogRecord]:
    """Records shaped like uvicorn 0.55's: an access line, a WebSocket handshake line,
    a websockets debug frame line, a trace line with the ASGI scope, and a websockets
    debug header line."""
    access = ("127.0.0.1:5", "GET", "/anywire/sse?ticket=SECRET1", "1.1", 200)
    auth = Frame(Opcode.TEXT, b'{"t":"auth","id":1,"token":"SECRET2"}')
    scope = {"type": "http", "path": "/anywire/poll", "query_string": b"token=SECRET3"}
    ws_line, ws_path = '%s - "WebSocket %s" [accepted]', "/anywire/ws?token=SECRET4"
    return [
        logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d', access, None),
        logging.LogRecord("uvicorn.error", 20, "", 0, ws_line, ("127.0.0.1:6", ws_path), None),
        logging.LogRecord("uvicorn.error", 10, "", 0, "< %s", (auth,), None),
        logging.LogRecord("uvicorn.asgi", 5, "", 0, "ASGI [1] Started scope=%s", (scope,), None),
        logging.LogRecord("uvicorn.error", 10, "", 0, "< %s: %s", ("Cookie", "SECRET5"), None),
    ]


def test_uvicorn_lines_lose_tickets_tokens_and_frame_payloads() -> None:
    lines = []
    for record in _uvicorn_records():
        assert ScrubSecrets().filter(record)
        lines.append(record.getMessage())
    assert "SECRET" not in "\n".join(lines)
    assert lines[0] == '127.0.0.1:5 - "GET /anywire/sse?ticket=*** HTTP/1.1" 200'
    assert lines[1] == '127.0.0.1:6 - "WebSocket /anywire/ws?token=***" [accepted]'
    assert lines[2] == "< TEXT [37 bytes]"
    assert "b'token=***'" in lines[3]
    assert lines[4] == "< Cookie: ***"
    pong = Frame(Opcode.PONG, b"hi")
    record = logging.LogRecord("uvicorn.error", 10, "", 0, "< %s", (pong,), None)
    ScrubSecrets().filter(record)
    assert record.getMessage() == f"< {pong}"  # control frames are kept as they are


def test_scrub_uvicorn_installs_one_filter_per_logger() -> None:
    scrub_uvicorn()
    scrub_uvicorn()
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn.asgi"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, ScrubSecrets) for f in filters) == 1


def test_workers_get_the_same_log_options() -> None:
    args = argparse.Namespace(log_level="debug", log_format="json", conn_log_level="warning")
    assert log_args(args) == [
        "--log-level", "debug", "--log-format", "json", "--conn-log-level", "warning"
    ]  # fmt: skip
    args.conn_log_level = None
    assert log_args(args) == ["--log-level", "debug", "--log-format", "json"]


def test_cli_refuses_an_unknown_log_format_and_level() -> None:
    base = [sys.executable, "-m", "anywire.server.cli", "serve", "tests.e2e.testapp:app"]
    bad_format = subprocess.run(
        [*base, "--log-format", "yaml"], capture_output=True, text=True, timeout=30
    )
    assert bad_format.returncode == 2 and "invalid choice: 'yaml'" in bad_format.stderr
    bad_level = subprocess.run(
        [*base, "--conn-log-level", "loud"], capture_output=True, text=True, timeout=30
    )
    assert bad_level.returncode == 2 and "invalid choice: 'loud'" in bad_level.stderr


def test_the_python_client_scrubs_httpx_and_websockets_lines() -> None:
    Client("http://127.0.0.1:9", token="t")
    url = httpx.URL("http://127.0.0.1:9/anywire/sse?ticket=SECRET6&last=2")
    args = ("GET", url, "HTTP/1.1", 200, "OK")  # shaped like httpx 0.29's request line
    record = logging.LogRecord("httpx", 20, "", 0, 'HTTP Request: %s %s "%s %d %s"', args, None)
    for f in logging.getLogger("httpx").filters:
        f.filter(record)
    assert record.getMessage() == (
        'HTTP Request: GET http://127.0.0.1:9/anywire/sse?ticket=***&last=2 "HTTP/1.1 200 OK"'
    )
    assert any(isinstance(f, ScrubSecrets) for f in logging.getLogger("websockets.client").filters)


def test_storm_refusals_are_one_line_a_second_with_the_count_left_out() -> None:
    """flood and busy negotiates (a reconnect storm: thousands a second) are logged once
    a second per outcome at most; the next line says how many were left out. Other
    outcomes are all logged."""
    logger = logging.getLogger("anywire.conn.test_storm_lines")
    logger.setLevel(logging.DEBUG)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    now = [100.0]
    log = ConnLog(logger=logger, clock=lambda: now[0])
    try:
        for _ in range(500):
            log.negotiated("busy", ())
        for _ in range(3):
            log.negotiated("flood", ())
        log.negotiated("bad_request", ())
        log.negotiated("bad_request", ())
        now[0] += 0.99
        log.negotiated("busy", ())
        now[0] += 0.01
        log.negotiated("busy", ())
    finally:
        logger.removeHandler(handler)
    lines = [(r.__dict__["outcome"], r.__dict__.get("more")) for r in records]
    assert lines == [
        ("busy", 0),
        ("flood", 0),
        ("bad_request", None),
        ("bad_request", None),
        ("busy", 500),  # 499 in the first burst and one 0.99 s later
    ]
    assert records[-1].getMessage() == 'negotiate outcome=busy transports="" more=500'
