"""python-socketio with its default transports (Engine.IO long-polling first, then the
upgrade to websocket), and a client that stays on polling, each chatting with a
websocket-only client; every message and receipt arrives exactly once."""

import time

from conftest import TIMEOUT, User, assert_message, parse_ts

# A "nothing else arrives" check waits this long.
QUIET_S = 0.8


def _id(message_id):
    return lambda d: isinstance(d, dict) and d.get("message_id") == message_id


def _is_error(d):
    return isinstance(d, dict) and d.get("type") == "error"


def _wait_transport(peer, name: str, timeout: float = TIMEOUT) -> None:
    """Poll (bounded) until ``peer``'s client is on transport ``name``."""
    deadline = time.monotonic() + timeout
    while peer.client.transport() != name:
        assert time.monotonic() < deadline, (
            f"[{peer.name}] still on {peer.client.transport()!r} after {timeout}s, "
            f"not {name!r}; engine.io log: {peer.eio_log}"
        )
        time.sleep(0.05)


def _exchange(sender, sender_user: User, recipient, recipient_user: User, text: str, cid: str) -> dict:
    """``sender`` sends ``text`` with an ack; the recipient gets the same object, the
    sender its echo and one ``delivered``. Returns the ack."""
    ack = sender.send(recipient_user, text, client_id=cid)
    assert_message(ack, sender_user, recipient_user, text, cid)
    mid = ack["message_id"]
    assert recipient.rec.wait_for("message", _id(mid)) == ack
    assert sender.rec.wait_for("message", _id(mid)) == ack
    delivered = sender.rec.wait_for("delivered", _id(mid))
    assert sorted(delivered) == ["delivered_at", "message_id", "to"], delivered
    assert delivered["to"] == recipient_user.user_id, delivered
    assert parse_ts(delivered["delivered_at"]) >= parse_ts(ack["created_at"]), delivered
    return ack


def _quiet(*peers_) -> None:
    """The "nothing else arrives" wait: no error for QUIET_S on any of ``peers_``."""
    first, *rest = peers_
    first.rec.assert_none("system", _is_error, within=QUIET_S)
    for peer in rest:
        peer.rec.assert_none("system", _is_error, within=0.2)


def _ids(peer, event: str) -> list:
    return sorted(d["message_id"] for d in peer.rec.of(event))


def test_default_transports_start_on_polling_and_upgrade_to_websocket(peers, users):
    alice, bob = users(2)
    b = peers.sio(bob, name="bob/websocket")  # transports=["websocket"]
    # The stock call: sio.connect(url, auth={"token": token}), no transports argument.
    a = peers.sio(alice, name="alice/default", transports=None)
    assert a.welcome == {"type": "welcome", "user_id": alice.user_id, "pending": 0}

    # The handshake went over polling; the client then upgrades (python-engineio does it
    # right after the handshake, before connect() returns, but poll for it anyway).
    assert any(line.startswith("Polling connection accepted") for line in a.eio_log), a.eio_log
    _wait_transport(a, "websocket")
    assert any(line == "WebSocket upgrade was successful" for line in a.eio_log), a.eio_log

    ack1 = _exchange(a, alice, b, bob, "alice -> bob, default transports", "pyup-a1")
    ack2 = _exchange(b, bob, a, alice, "bob -> alice, to the upgraded client", "pyup-b1")
    ack3 = _exchange(a, alice, b, bob, "alice -> bob, once more", "pyup-a2")

    # Exactly once: each side saw every message once (its own as the echo), and one
    # delivered per message it sent.
    _quiet(a, b)
    everything = sorted(m["message_id"] for m in (ack1, ack2, ack3))
    assert _ids(a, "message") == everything, a.rec.of("message")
    assert _ids(b, "message") == everything, b.rec.of("message")
    assert _ids(a, "delivered") == sorted([ack1["message_id"], ack3["message_id"]])
    assert _ids(b, "delivered") == [ack2["message_id"]]
    # The wire record agrees (handlers may run out of order, the wire does not).
    assert sorted(m["message_id"] for m in a.wire.of("message")) == everything

    assert a.client.transport() == "websocket"
    assert a.connected and not a.disconnects and not a.connect_errors
    assert not any("upgrade failed" in line for line in a.eio_log), a.eio_log


def test_polling_only_client_gets_messages_delivered_and_receipts(peers, users):
    alice, bob = users(2)
    p = peers.sio(alice, name="alice/polling", transports=["polling"])
    w = peers.sio(bob, name="bob/websocket")
    assert p.welcome == {"type": "welcome", "user_id": alice.user_id, "pending": 0}
    assert p.client.transport() == "polling"

    # To the polling client, and from it.
    to_p = _exchange(w, bob, p, alice, "bob -> alice, who polls", "pypoll-b1")
    from_p = _exchange(p, alice, w, bob, "alice -> bob, by POST", "pypoll-a1")

    # The polling client reads bob's message: read_ack to it, the receipt to bob.
    p.emit("read", {"message_id": to_p["message_id"]})
    read_ack = p.rec.wait_for("read_ack", _id(to_p["message_id"]))
    assert sorted(read_ack) == ["message_id", "read_at"], read_ack
    receipt = w.rec.wait_for("read", _id(to_p["message_id"]))
    assert receipt == {
        "message_id": to_p["message_id"],
        "by": alice.user_id,
        "read_at": read_ack["read_at"],
    }
    assert parse_ts(read_ack["read_at"]) >= parse_ts(to_p["created_at"])

    # Exactly once.
    _quiet(p, w)
    both = sorted([to_p["message_id"], from_p["message_id"]])
    assert _ids(p, "message") == both, p.rec.of("message")
    assert _ids(w, "message") == both, w.rec.of("message")
    assert _ids(p, "delivered") == [from_p["message_id"]]
    assert _ids(w, "delivered") == [to_p["message_id"]]
    assert _ids(p, "read_ack") == [to_p["message_id"]]
    assert _ids(w, "read") == [to_p["message_id"]]
    assert not p.rec.of("read") and not w.rec.of("read_ack")

    # Still on polling, never dropped.
    assert p.client.transport() == "polling"
    assert p.connected and not p.disconnects and not p.connect_errors
