"""Shared helpers for the python-socketio end-to-end suite.

The suite talks to an already running chat service:

* ``CHAT_HTTP_URL``          base URL of the service (REST, Socket.IO and plain WebSocket)
* ``CHAT_PING_INTERVAL_MS``  the server's Engine.IO ping interval
* ``CHAT_PING_TIMEOUT_MS``   the server's Engine.IO ping timeout

Every test logs in its own fresh users (fresh random mobile numbers, never reused within
a run), and every client a test opens is registered with a fixture that disconnects it at
teardown. Every wait is bounded.

A note on ordering: the synchronous ``socketio.Client`` runs each incoming Engine.IO
message handler in a new thread (python-engineio ``run_async=True``), so the order in
which event *handlers* run is not guaranteed to be the order in which the server sent the
events. Waiting uses the handler-fed recorder; assertions about order use the "wire"
record, captured in the client's read-loop thread through the client's public
``engineio_logger`` option (python-engineio logs every received packet there, in arrival
order, before dispatching it).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional, Sequence
from urllib.parse import quote, urlsplit

import pytest
import requests
import socketio
import websocket
from socketio import packet as sio_packet

HTTP_URL = os.environ.get("CHAT_HTTP_URL", "http://127.0.0.1:8000").rstrip("/")
PING_INTERVAL_MS = int(os.environ.get("CHAT_PING_INTERVAL_MS", "25000"))
PING_TIMEOUT_MS = int(os.environ.get("CHAT_PING_TIMEOUT_MS", "20000"))

_parts = urlsplit(HTTP_URL)
WS_URL = ("wss" if _parts.scheme == "https" else "ws") + "://" + _parts.netloc

# Generous: the real run shares the machine with other suites and a debug build.
TIMEOUT = 10.0
HTTP_TIMEOUT = 10.0
# How long a negative check ("this must NOT arrive") waits.
QUIET = 0.7

Predicate = Optional[Callable[[Any], bool]]


# --------------------------------------------------------------------------- users


_used_mobiles: set[str] = set()
_mobile_lock = threading.Lock()
_rng = random.SystemRandom()


def fresh_mobile() -> str:
    """A valid mobile number (+1415555XXXX) not used before in this run."""
    with _mobile_lock:
        if len(_used_mobiles) >= 9000:
            raise RuntimeError("ran out of fresh mobile numbers")
        while True:
            mobile = "+1415555%04d" % _rng.randrange(10000)
            if mobile not in _used_mobiles:
                _used_mobiles.add(mobile)
                return mobile


@dataclass(frozen=True)
class User:
    mobile: str
    token: str
    user_id: str
    display_name: str
    expires_at: str

    @property
    def auth(self) -> dict:
        return {"Authorization": self.token}


def request_otp(mobile: str) -> str:
    r = requests.post(
        f"{HTTP_URL}/users/auth/request_otp", json={"mobile": mobile}, timeout=HTTP_TIMEOUT
    )
    assert r.status_code == 200, f"request_otp {mobile}: {r.status_code} {r.text}"
    body = r.json()
    assert body["mobile"] == mobile, body
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0, body
    # OTP_MODE=sms: the code went by text message; the local gateway keeps an outbox.
    otp = body.get("otp") or sms_code(mobile)
    assert isinstance(otp, str) and len(otp) == 6 and otp.isdigit(), body
    return otp


def sms_code(mobile: str) -> str:
    """The code in the newest text message to ``mobile`` (the SNS emulation's outbox)."""
    r = requests.get(f"{HTTP_URL}/local/sms/{quote(mobile)}", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, f"sms outbox {mobile}: {r.status_code} {r.text}"
    messages = r.json()["messages"]
    assert messages, f"no text message to {mobile}"
    match = re.search(r"\b(\d{6})\b", messages[-1]["text"])
    assert match, messages[-1]
    return match.group(1)


def login(mobile: Optional[str] = None) -> User:
    """Request an OTP and verify it. Without ``mobile`` a fresh number is used."""
    mobile = mobile or fresh_mobile()
    otp = request_otp(mobile)
    r = requests.post(
        f"{HTTP_URL}/users/auth/verify",
        json={"mobile": mobile, "otp": otp},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 200, f"verify {mobile}: {r.status_code} {r.text}"
    body = r.json()
    for key in ("token", "user_id", "display_name", "expires_at"):
        assert isinstance(body.get(key), str) and body[key], (key, body)
    return User(
        mobile=mobile,
        token=body["token"],
        user_id=body["user_id"],
        display_name=body["display_name"],
        expires_at=body["expires_at"],
    )


def history(user: User, other: User, **params) -> dict:
    """GET /chat/messages/{other} as ``user``, in strict order unless ``order`` is given
    (the suite also runs with the experiments on, and artistic chronology reorders)."""
    params.setdefault("order", "strict")
    r = requests.get(
        f"{HTTP_URL}/chat/messages/{other.user_id}",
        headers=user.auth,
        params=params,
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 200, f"history: {r.status_code} {r.text}"
    body = r.json()
    assert set(body) >= {"messages", "next_before", "has_more"}, body
    return body


def parse_ts(value: str) -> datetime:
    """Parse the service's ISO-8601 UTC timestamps (``2026-11-26T12:57:16.400Z``)."""
    assert isinstance(value, str) and value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- recorder


class EventRecorder:
    """Thread-safe record of (event, data) pairs with bounded waits."""

    def __init__(self, name: str):
        self.name = name
        self._events: list[tuple[str, Any]] = []
        self._cond = threading.Condition()

    def record(self, event: str, data: Any) -> None:
        with self._cond:
            self._events.append((event, data))
            self._cond.notify_all()

    def all(self) -> list[tuple[str, Any]]:
        with self._cond:
            return list(self._events)

    def of(self, event: str, pred: Predicate = None) -> list[Any]:
        with self._cond:
            return [d for e, d in self._events if e == event and (pred is None or pred(d))]

    def wait_n(self, event: str, n: int, pred: Predicate = None, timeout: float = TIMEOUT) -> list:
        """Wait until at least ``n`` matching events were recorded; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [d for e, d in self._events if e == event and (pred is None or pred(d))]
                if len(found) >= n:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"[{self.name}] waited {timeout}s for {n} x {event!r}"
                        f"{' matching predicate' if pred else ''}, got {len(found)}; "
                        f"everything received: {self._dump()}"
                    )
                self._cond.wait(remaining)

    def wait_for(self, event: str, pred: Predicate = None, timeout: float = TIMEOUT) -> Any:
        """Wait for the first matching event and return its data."""
        return self.wait_n(event, 1, pred, timeout)[0]

    def assert_none(self, event: str, pred: Predicate = None, within: float = QUIET) -> None:
        """Assert no matching event arrives (or has arrived) within ``within`` seconds."""
        # A check that does not wait cannot see a late event, so it could never fail.
        assert within >= 0.2, f"assert_none needs a real wait (got {within}s)"
        deadline = time.monotonic() + within
        with self._cond:
            while True:
                found = [d for e, d in self._events if e == event and (pred is None or pred(d))]
                assert not found, f"[{self.name}] unexpected {event!r}: {found}"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def _dump(self) -> str:
        text = json.dumps(self._events, default=str)
        return text if len(text) < 4000 else text[:4000] + "..."


class _LogTap(logging.Handler):
    """Keeps every message python-engineio logs for one client (e.g. "Polling connection
    accepted ...", "WebSocket upgrade was successful", "WebSocket upgrade failed: ...")."""

    def __init__(self, lines: list[str]):
        super().__init__(level=logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except Exception:  # never break the client's read loop
            pass


class _WireTap(logging.Handler):
    """Captures Socket.IO EVENT packets from python-engineio's 'Received packet' log
    records, which are emitted in the client's read-loop thread in arrival order."""

    def __init__(self, recorder: EventRecorder):
        super().__init__(level=logging.INFO)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not str(record.msg).startswith("Received packet"):
                return
            args = record.args or ()
            if len(args) < 2 or args[0] != "MESSAGE" or not isinstance(args[1], str):
                return
            pkt = sio_packet.Packet(encoded_packet=args[1])
            if pkt.packet_type == sio_packet.EVENT and isinstance(pkt.data, list) and pkt.data:
                data = pkt.data[1] if len(pkt.data) == 2 else pkt.data[1:]
                self.recorder.record(pkt.data[0], data)
        except Exception:  # never break the client's read loop
            pass


# --------------------------------------------------------------------------- clients

_ids = itertools.count()


class SioPeer:
    """A stock synchronous python-socketio client for one user, with recorders."""

    welcome: Optional[dict] = None

    def __init__(self, user: Optional[User], name: str):
        self.user = user
        self.name = name
        self.rec = EventRecorder(name)  # fed by handlers (use for waiting)
        self.wire = EventRecorder(name + "/wire")  # in arrival order (use for ordering)
        self.connect_errors: list[Any] = []
        self.disconnects: list[Any] = []
        self._eio_logger = logging.getLogger(f"chat-e2e.eio.{name}.{next(_ids)}")
        self._eio_logger.setLevel(logging.INFO)
        self._eio_logger.propagate = False
        self._tap = _WireTap(self.wire)
        self._eio_logger.addHandler(self._tap)
        self.eio_log: list[str] = []  # python-engineio's log lines for this client
        self._log_tap = _LogTap(self.eio_log)
        self._eio_logger.addHandler(self._log_tap)
        self.client = socketio.Client(
            reconnection=False, logger=False, engineio_logger=self._eio_logger
        )

        @self.client.on("*")
        def _any(event, *args):
            self.rec.record(event, args[0] if len(args) == 1 else list(args))

        @self.client.on("connect_error")
        def _connect_error(*args):
            self.connect_errors.append(args[0] if len(args) == 1 else list(args))

        @self.client.on("disconnect")
        def _disconnect(*args):
            self.disconnects.append(args)

    def connect(
        self,
        token: Optional[str] = None,
        wait_welcome: bool = True,
        transports: Optional[Sequence[str]] = ("websocket",),
    ) -> Optional[dict]:
        """Connect (websocket transport only unless ``transports`` says otherwise; ``None``
        is python-socketio's default: polling, then the upgrade to websocket) and return
        the welcome system event."""
        tok = token if token is not None else self.user.token
        options: dict = {"auth": {"token": tok}, "wait_timeout": TIMEOUT}
        if transports is not None:
            options["transports"] = list(transports)
        self.client.connect(HTTP_URL, **options)
        if not wait_welcome:
            return None
        welcome = self.rec.wait_for("system", lambda d: d.get("type") == "welcome")
        if self.user is not None:
            assert welcome["user_id"] == self.user.user_id, welcome
        assert isinstance(welcome["pending"], int), welcome
        return welcome

    def call(self, event: str, data: Any, timeout: float = TIMEOUT) -> Any:
        return self.client.call(event, data, timeout=timeout)

    def emit(self, event: str, data: Any) -> None:
        self.client.emit(event, data)

    def send(self, to: User, text: str, client_id: Optional[str] = None) -> dict:
        """send_message with an ack; returns the acked message object."""
        payload: dict = {"to": to.user_id, "text": text}
        if client_id is not None:
            payload["client_id"] = client_id
        ack = self.call("send_message", payload)
        assert isinstance(ack, dict), f"send_message ack is not an object: {ack!r}"
        return ack

    @property
    def connected(self) -> bool:
        return self.client.connected

    def close(self) -> None:
        try:
            if self.client.connected:
                self.client.disconnect()
            self.client.shutdown()
        except Exception:
            pass
        finally:
            self._eio_logger.removeHandler(self._tap)
            self._eio_logger.removeHandler(self._log_tap)


class PlainPeer:
    """A plain-JSON WebSocket client (websocket-client) with a reader thread."""

    welcome: Optional[dict] = None

    def __init__(self, user: User, name: str):
        self.user = user
        self.name = name
        self.rec = EventRecorder(name)  # read sequentially: arrival order is preserved
        self.raw: list[str] = []
        self.closed_by_server = threading.Event()
        self._stop = threading.Event()
        self.ws = websocket.create_connection(
            f"{WS_URL}/?token={user.token}", timeout=TIMEOUT
        )
        self.ws.settimeout(0.25)
        self._thread = threading.Thread(target=self._read, name=f"plain-{name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                self.closed_by_server.set()
                return
            if frame is None or frame == "":
                if not self.ws.connected:
                    self.closed_by_server.set()
                    return
                continue
            if isinstance(frame, bytes):
                frame = frame.decode("utf-8", "replace")
            self.raw.append(frame)
            try:
                msg = json.loads(frame)
            except ValueError:
                self.rec.record("__unparsable__", frame)
                continue
            if isinstance(msg, dict) and "event" in msg:
                self.rec.record(msg["event"], msg.get("data"))
            else:
                self.rec.record("__unexpected__", msg)

    def wait_welcome(self) -> dict:
        welcome = self.rec.wait_for("system", lambda d: d.get("type") == "welcome")
        assert welcome["user_id"] == self.user.user_id, welcome
        assert isinstance(welcome["pending"], int), welcome
        return welcome

    def send(self, action: str, **fields) -> None:
        self.ws.send(json.dumps({"action": action, **fields}))

    def close(self) -> None:
        self._stop.set()
        try:
            self.ws.close(timeout=2)
        except Exception:
            pass
        self._thread.join(timeout=3)


# Clients closed at a test's teardown finish closing in the background; the session
# waits for all of them at the end (bounded). See the note in close_all.
_closers: list[threading.Thread] = []


def _join_closers(limit: float = 15.0) -> list[str]:
    deadline = time.monotonic() + limit
    stuck = []
    for t in _closers:
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            stuck.append(t.name)
    _closers.clear()
    return stuck


class Peers:
    """Factory for clients; everything it creates is closed at teardown."""

    def __init__(self):
        self._all: list[Any] = []

    def sio(
        self,
        user: Optional[User],
        name: Optional[str] = None,
        connect: bool = True,
        transports: Optional[Sequence[str]] = ("websocket",),
    ) -> SioPeer:
        """A python-socketio client, connected unless ``connect`` is false; ``transports``
        as in ``SioPeer.connect`` (``None``: the library's default, polling then upgrade)."""
        peer = SioPeer(user, name or (user.display_name if user else "anon"))
        self._all.append(peer)
        if connect:
            peer.welcome = peer.connect(transports=transports)
        return peer

    def plain(self, user: User, name: Optional[str] = None, wait_welcome: bool = True) -> PlainPeer:
        peer = PlainPeer(user, name or user.display_name + "/plain")
        self._all.append(peer)
        if wait_welcome:
            peer.welcome = peer.wait_welcome()
        return peer

    def close_all(self) -> None:
        """Disconnect every client of the test.

        The disconnect starts immediately (python-socketio sends its DISCONNECT and
        Engine.IO CLOSE packets and a WebSocket close frame), but the server never answers
        a client's close frame and drops the TCP connection only ~2 s later, and the
        client waits for that. So the waiting happens in background threads, joined at the
        end of the session, instead of adding ~2 s per client to every test.
        """
        for peer in reversed(self._all):
            t = threading.Thread(target=peer.close, name=f"close-{peer.name}", daemon=True)
            t.start()
            _closers.append(t)
        self._all.clear()


@pytest.fixture(scope="session", autouse=True)
def _close_everything_at_the_end():
    yield
    stuck = _join_closers()
    assert not stuck, f"clients still closing after 15 s: {stuck}"


@pytest.fixture
def peers():
    p = Peers()
    try:
        yield p
    finally:
        p.close_all()


@pytest.fixture
def users():
    """``users(n)`` logs in ``n`` fresh users."""

    def make(n: int) -> list[User]:
        return [login() for _ in range(n)]

    return make


def assert_message(obj: dict, sender: User, to: User, text: str, client_id: Optional[str]) -> None:
    """The shape of a message object as sent in acks and ``message`` events."""
    assert isinstance(obj.get("message_id"), str) and obj["message_id"], obj
    assert obj["from"] == sender.user_id, obj
    assert obj["to"] == to.user_id, obj
    assert obj["text"] == text, obj
    assert "client_id" in obj and obj["client_id"] == client_id, obj
    parse_ts(obj["created_at"])
