"""Connecting: authentication, offline backlog, several devices, staying connected."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import socketio
import websocket

from conftest import (
    HTTP_TIMEOUT,
    HTTP_URL,
    PING_INTERVAL_MS,
    PING_TIMEOUT_MS,
    TIMEOUT,
    WS_URL,
    assert_message,
    history,
    login,
)


def _id(message_id):
    return lambda d: d.get("message_id") == message_id


def _refusals(peers, auths):
    """Try to connect with each auth payload (None: no auth at all), concurrently (a
    refused python-socketio connect spends ~2 s closing, see conftest), and return
    (peer, exception) pairs."""

    def attempt(auth):
        peer = peers.sio(None, name=f"intruder-{auth!r}"[:40], connect=False)
        try:
            peer.client.connect(
                HTTP_URL, transports=["websocket"], auth=auth, wait_timeout=TIMEOUT
            )
        except Exception as e:  # noqa: BLE001 - asserted by the caller
            return peer, e
        return peer, None

    with ThreadPoolExecutor(max_workers=len(auths)) as pool:
        futures = [pool.submit(attempt, auth) for auth in auths]
        return [f.result(timeout=3 * TIMEOUT) for f in futures]


def test_invalid_token_is_refused(peers, users):
    (alice,) = users(1)

    # The server answers the namespace CONNECT with CONNECT_ERROR {"message": "unauthorized"}.
    # python-socketio 5.18.1 raises ConnectionError("One or more namespaces failed to
    # connect: /") and hands that payload to the connect_error handler.
    tampered = alice.token[:-1] + ("A" if alice.token[-1] != "A" else "B")
    auths = [{"token": "not-a-real-token"}, {"token": tampered}, {"token": ""}, None]
    for auth, (peer, err) in zip(auths, _refusals(peers, auths)):
        assert isinstance(err, socketio.exceptions.ConnectionError), (auth, err)
        assert peer.connect_errors == [{"message": "unauthorized"}], (auth, str(err), peer.connect_errors)
        assert not peer.connected
        assert not peer.rec.all(), f"{auth}: events for a refused connection: {peer.rec.all()}"

    # The genuine token still works.
    ok = peers.sio(alice)
    assert ok.connected and ok.welcome["user_id"] == alice.user_id

    # A token that was valid but has been logged out is refused too.
    r = requests.post(f"{HTTP_URL}/users/auth/logout", headers=alice.auth, timeout=HTTP_TIMEOUT)
    assert r.status_code == 204, r.text
    [(peer, err)] = _refusals(peers, [{"token": alice.token}])
    assert isinstance(err, socketio.exceptions.ConnectionError), err
    assert peer.connect_errors == [{"message": "unauthorized"}]

    # Plain-JSON WebSocket: the handshake itself is refused with HTTP 401.
    for query in ["?token=not-a-real-token", "", f"?token={alice.token}"]:
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(f"{WS_URL}/{query}", timeout=TIMEOUT)
        assert info.value.status_code == 401, (query, info.value)


def test_offline_recipient_gets_backlog_in_order_on_connect(peers, users):
    alice, bob = users(2)
    a = peers.sio(alice)

    texts = [f"offline #{i}" for i in range(5)]
    acks = [a.send(bob, t, client_id=f"off-{i}") for i, t in enumerate(texts)]
    ids = [m["message_id"] for m in acks]
    assert len(set(ids)) == 5

    # Nobody to deliver to: no delivered receipt, nothing marked delivered.
    a.rec.assert_none("delivered", lambda d: d["message_id"] in ids)
    stored = history(alice, bob)["messages"]
    assert [m["message_id"] for m in stored] == ids
    assert all(m["delivered_at"] is None for m in stored), stored

    b = peers.sio(bob, connect=False)
    welcome = b.connect()
    assert welcome == {"type": "welcome", "user_id": bob.user_id, "pending": 5}

    got = b.rec.wait_n("message", 5)
    assert sorted(m["message_id"] for m in got) == sorted(ids)
    for m, ack in zip(sorted(got, key=lambda m: ids.index(m["message_id"])), acks):
        assert m == ack
    # Arrival order on the wire: the welcome first, then the backlog oldest first.
    wire = b.wire.all()
    assert wire[0] == ("system", welcome), wire
    assert [d["message_id"] for e, d in wire if e == "message"] == ids, wire

    # The sender now learns each one was delivered.
    delivered = a.rec.wait_n("delivered", 5, lambda d: d["message_id"] in ids)
    assert sorted(d["message_id"] for d in delivered) == sorted(ids)
    assert all(d["to"] == bob.user_id for d in delivered), delivered
    b.rec.assert_none("message", lambda d: d["message_id"] not in ids, within=0.3)
    assert len(b.rec.of("message")) == 5, "backlog delivered more than once"

    # A later connection has nothing pending.
    b2 = peers.sio(bob)
    assert b2.welcome["pending"] == 0
    b2.rec.assert_none("message", within=0.3)


def test_recipient_who_disconnected_gets_what_was_sent_meanwhile(peers, users):
    alice, bob = users(2)
    a = peers.sio(alice)
    b = peers.sio(bob)
    first = a.send(bob, "while online")
    b.rec.wait_for("message", _id(first["message_id"]))
    a.rec.wait_for("delivered", _id(first["message_id"]))

    b.client.disconnect()
    assert not b.connected
    later = [a.send(bob, f"while away #{i}") for i in range(3)]
    later_ids = [m["message_id"] for m in later]
    a.rec.assert_none("delivered", lambda d: d["message_id"] in later_ids)

    b_again = peers.sio(bob)
    assert b_again.welcome["pending"] == 3, b_again.welcome
    b_again.rec.wait_n("message", 3)
    assert [d["message_id"] for e, d in b_again.wire.all() if e == "message"] == later_ids
    a.rec.wait_n("delivered", 3, lambda d: d["message_id"] in later_ids)


def test_two_devices_of_one_user_both_receive(peers, users):
    alice, bob = users(2)
    # A second device: a second login with the same number is the same user, new token.
    bob2 = login(bob.mobile)
    assert bob2.user_id == bob.user_id and bob2.token != bob.token

    a = peers.sio(alice)
    phone = peers.sio(bob, name="bob-phone")
    laptop = peers.sio(bob2, name="bob-laptop")

    ack = a.send(bob, "to all your devices")
    assert phone.rec.wait_for("message", _id(ack["message_id"])) == ack
    assert laptop.rec.wait_for("message", _id(ack["message_id"])) == ack

    # What one device sends shows up on the other device too, and at the recipient.
    reply = phone.send(alice, "sent from the phone")
    assert_message(reply, bob, alice, "sent from the phone", None)
    assert a.rec.wait_for("message", _id(reply["message_id"])) == reply
    assert laptop.rec.wait_for("message", _id(reply["message_id"])) == reply

    # Either device may read: the sender gets the receipt, the reading device the ack.
    laptop.emit("read", {"message_id": ack["message_id"]})
    read_ack = laptop.rec.wait_for("read_ack", _id(ack["message_id"]))
    receipt = a.rec.wait_for("read", _id(ack["message_id"]))
    assert receipt["by"] == bob.user_id and receipt["read_at"] == read_ack["read_at"]


def _raw_engineio_pings(token, seconds, out):
    """A raw Engine.IO v4 client that answers pings and records when they came."""
    ws = websocket.create_connection(f"{WS_URL}/socket.io/?EIO=4&transport=websocket", timeout=TIMEOUT)
    try:
        opening = ws.recv()
        assert opening.startswith("0"), opening
        out["open"] = json.loads(opening[1:])
        ws.send("40" + json.dumps({"token": token}))
        ws.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if frame == "2":
                out["pings"].append(time.monotonic())
                ws.send("3")
            elif frame.startswith("40"):
                out["connected"] = True
    except Exception as e:  # reported by the test
        out["error"] = repr(e)
    finally:
        out["alive_at_end"] = ws.connected
        if ws.connected:
            ws.send("1")  # Engine.IO CLOSE: the server closes right away
        ws.close(timeout=0.1)


def test_stays_connected_across_ping_intervals(peers, users):
    alice, bob = users(2)
    a = peers.sio(alice)
    b = peers.sio(bob)

    # The Engine.IO handshake announces the configured ping settings.
    assert a.client.eio.ping_interval == PING_INTERVAL_MS / 1000
    assert a.client.eio.ping_timeout == PING_TIMEOUT_MS / 1000

    intervals = 4.6
    window = PING_INTERVAL_MS / 1000 * intervals
    raw = {"pings": []}
    t = threading.Thread(target=_raw_engineio_pings, args=(alice.token, window, raw), daemon=True)
    t.start()
    t.join(window + TIMEOUT)
    assert not t.is_alive()

    assert "error" not in raw, raw
    assert raw.get("connected"), raw
    assert raw["open"]["pingInterval"] == PING_INTERVAL_MS
    assert raw["open"]["pingTimeout"] == PING_TIMEOUT_MS
    assert len(raw["pings"]) >= 4, f"server pinged {len(raw['pings'])} times in {window}s"
    gaps = [b - a for a, b in zip(raw["pings"], raw["pings"][1:])]
    assert all(0.5 * PING_INTERVAL_MS / 1000 < g < 2 * PING_INTERVAL_MS / 1000 for g in gaps), gaps
    assert raw["alive_at_end"]

    # The stock clients sat idle through the same window and are still connected...
    assert a.connected and b.connected
    assert not a.disconnects and not b.disconnects
    # ...and still work both ways.
    m1 = a.send(bob, "still there?")
    b.rec.wait_for("message", _id(m1["message_id"]))
    m2 = b.send(alice, "yes")
    a.rec.wait_for("message", _id(m2["message_id"]))
