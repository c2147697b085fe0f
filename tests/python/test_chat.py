"""Real-time chat between python-socketio clients: acks, delivery, read receipts,
typing, idempotent sends and unknown events."""

import uuid

from conftest import assert_message, history, parse_ts


def _id(message_id):
    return lambda d: d.get("message_id") == message_id


def test_two_users_chat_both_ways_with_acks(peers, users):
    alice, bob = users(2)
    a = peers.sio(alice)
    b = peers.sio(bob)
    assert a.welcome == {"type": "welcome", "user_id": alice.user_id, "pending": 0}
    assert b.welcome == {"type": "welcome", "user_id": bob.user_id, "pending": 0}

    cid = "py-" + uuid.uuid4().hex
    ack1 = a.send(bob, "hello bob", client_id=cid)
    assert_message(ack1, alice, bob, "hello bob", cid)

    # Both the recipient and the sender's own connection get the same message object.
    got_b = b.rec.wait_for("message", _id(ack1["message_id"]))
    got_a = a.rec.wait_for("message", _id(ack1["message_id"]))
    assert got_b == ack1
    assert got_a == ack1

    # Without a client_id the ack carries client_id null.
    ack2 = b.send(alice, "hi alice, ünïcødé ✓")
    assert_message(ack2, bob, alice, "hi alice, ünïcødé ✓", None)
    assert ack2["message_id"] != ack1["message_id"]
    assert a.rec.wait_for("message", _id(ack2["message_id"])) == ack2
    assert b.rec.wait_for("message", _id(ack2["message_id"])) == ack2
    assert parse_ts(ack2["created_at"]) >= parse_ts(ack1["created_at"])

    # Each side saw exactly these two messages, and nothing for anyone else.
    assert sorted(m["message_id"] for m in a.rec.of("message")) == sorted(
        [ack1["message_id"], ack2["message_id"]]
    )
    assert sorted(m["message_id"] for m in b.rec.of("message")) == sorted(
        [ack1["message_id"], ack2["message_id"]]
    )
    assert not a.rec.of("system", lambda d: d.get("type") == "error")
    assert not b.rec.of("system", lambda d: d.get("type") == "error")


def test_delivered_reaches_sender(peers, users):
    alice, bob = users(2)
    a = peers.sio(alice)
    b = peers.sio(bob)

    ack = a.send(bob, "did you get this?")
    b.rec.wait_for("message", _id(ack["message_id"]))
    delivered = a.rec.wait_for("delivered", _id(ack["message_id"]))
    assert delivered["to"] == bob.user_id, delivered
    assert parse_ts(delivered["delivered_at"]) >= parse_ts(ack["created_at"])
    # Exactly one delivered receipt for it.
    a.rec.assert_none("delivered", lambda d: d is not delivered and d["message_id"] == ack["message_id"])


def test_read_receipt_and_read_ack_and_others_forbidden(peers, users):
    alice, bob, carol = users(3)
    a = peers.sio(alice)
    b = peers.sio(bob)
    c = peers.sio(carol)

    ack = a.send(bob, "please read me")
    mid = ack["message_id"]
    b.rec.wait_for("message", _id(mid))
    a.rec.wait_for("delivered", _id(mid))

    # A third user may not mark it read.
    c.emit("read", {"message_id": mid})
    err = c.rec.wait_for("system", lambda d: d.get("type") == "error")
    assert err["code"] == "forbidden", err
    assert isinstance(err.get("message"), str) and err["message"], err

    # Neither may the sender: only the recipient reads.
    a.emit("read", {"message_id": mid})
    err_a = a.rec.wait_for("system", lambda d: d.get("type") == "error")
    assert err_a["code"] == "forbidden", err_a

    a.rec.assert_none("read", _id(mid))
    c.rec.assert_none("read_ack")
    assert c.connected and a.connected
    assert history(alice, bob)["messages"][0]["read_at"] is None

    # The recipient reads it: read_ack to the reader, read receipt to the sender.
    b.emit("read", {"message_id": mid})
    read_ack = b.rec.wait_for("read_ack", _id(mid))
    receipt = a.rec.wait_for("read", _id(mid))
    assert receipt["by"] == bob.user_id, receipt
    assert receipt["read_at"] == read_ack["read_at"], (receipt, read_ack)
    assert parse_ts(read_ack["read_at"]) >= parse_ts(ack["created_at"])
    assert not b.rec.of("system", lambda d: d.get("type") == "error")
    # The third user heard nothing about it.
    assert not c.rec.of("read") and not c.rec.of("message")


def test_typing_is_relayed_to_the_recipient_only(peers, users):
    alice, bob, carol = users(3)
    a = peers.sio(alice)
    b = peers.sio(bob)
    c = peers.sio(carol)

    b.emit("typing", {"to": alice.user_id, "typing": True})
    assert a.rec.wait_for("typing") == {"from": bob.user_id, "typing": True}
    b.emit("typing", {"to": alice.user_id, "typing": False})
    a.rec.wait_for("typing", lambda d: d.get("typing") is False)
    assert a.wire.of("typing") == [
        {"from": bob.user_id, "typing": True},
        {"from": bob.user_id, "typing": False},
    ]
    c.rec.assert_none("typing")
    assert not b.rec.of("typing")


def test_same_client_id_twice_gives_one_message(peers, users):
    alice, bob = users(2)
    a = peers.sio(alice)
    b = peers.sio(bob)

    cid = "dup-" + uuid.uuid4().hex
    first = a.send(bob, "only once", client_id=cid)
    second = a.send(bob, "only once", client_id=cid)
    assert second["message_id"] == first["message_id"], (first, second)
    assert second == first

    b.rec.wait_for("message", _id(first["message_id"]))
    a.rec.wait_for("delivered", _id(first["message_id"]))
    # Give any duplicate a chance to show up: the message reached bob once, and one
    # delivered receipt reached alice.
    b.rec.assert_none("message", lambda d: d["message_id"] != first["message_id"])
    assert [m["message_id"] for m in b.rec.of("message")] == [first["message_id"]]
    assert [d["message_id"] for d in a.rec.of("delivered")] == [first["message_id"]]

    stored = history(alice, bob)["messages"]
    assert [m["message_id"] for m in stored] == [first["message_id"]], stored
    assert stored[0]["client_id"] == cid

    # A different client_id is a different message.
    third = a.send(bob, "only once", client_id=cid + "-2")
    assert third["message_id"] != first["message_id"]
    assert len(history(alice, bob)["messages"]) == 2


def test_unknown_event_gets_error_and_connection_stays(peers, users):
    alice, bob = users(2)
    a = peers.sio(alice)
    b = peers.sio(bob)

    a.emit("no_such_event", {"x": 1})
    err = a.rec.wait_for("system", lambda d: d.get("type") == "error")
    assert err["code"] == "unknown_event", err
    # The error names the event it answers in its own field; the message never repeats
    # what the client sent.
    assert err.get("event") == "no_such_event", err
    assert "no_such_event" not in err.get("message", ""), err

    # Still connected and still working.
    a.rec.assert_none("system", lambda d: d is not err and d.get("type") == "error", within=0.3)
    assert a.connected and not a.disconnects
    ack = a.send(bob, "still here")
    b.rec.wait_for("message", _id(ack["message_id"]))
