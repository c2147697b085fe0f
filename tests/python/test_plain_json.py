"""A plain-JSON WebSocket client (no Socket.IO) and a python-socketio client together."""

import uuid

from conftest import assert_message


def _id(message_id):
    return lambda d: d.get("message_id") == message_id


def test_plain_json_and_socketio_clients_chat_both_ways(peers, users):
    alice, bob = users(2)
    plain = peers.plain(alice)
    # `pid` names the recoverable session (`?resume=<pid>:<offset>`); this one is new.
    assert plain.welcome == {
        "type": "welcome",
        "user_id": alice.user_id,
        "pending": 0,
        "pid": plain.welcome["pid"],
        "recovered": False,
    }
    assert len(plain.welcome["pid"]) == 24
    sio = peers.sio(bob)

    # plain -> socket.io
    cid = "plain-" + uuid.uuid4().hex
    plain.send("send_message", to=bob.user_id, text="hello from plain JSON", client_id=cid)
    at_bob = sio.rec.wait_for("message", lambda d: d.get("client_id") == cid)
    assert_message(at_bob, alice, bob, "hello from plain JSON", cid)
    # The sender's own connection gets the same message object, then the receipt.
    assert plain.rec.wait_for("message", _id(at_bob["message_id"])) == at_bob
    delivered = plain.rec.wait_for("delivered", _id(at_bob["message_id"]))
    assert delivered["to"] == bob.user_id

    # socket.io -> plain
    ack = sio.send(alice, "hello from python-socketio", client_id="sio-" + cid)
    assert_message(ack, bob, alice, "hello from python-socketio", "sio-" + cid)
    assert plain.rec.wait_for("message", _id(ack["message_id"])) == ack
    sio.rec.wait_for("delivered", _id(ack["message_id"]))

    # typing both ways
    plain.send("typing", to=bob.user_id, typing=True)
    assert sio.rec.wait_for("typing") == {"from": alice.user_id, "typing": True}
    sio.emit("typing", {"to": alice.user_id, "typing": True})
    assert plain.rec.wait_for("typing") == {"from": bob.user_id, "typing": True}

    # read receipts both ways
    plain.send("read", message_id=ack["message_id"])
    read_ack = plain.rec.wait_for("read_ack", _id(ack["message_id"]))
    receipt = sio.rec.wait_for("read", _id(ack["message_id"]))
    assert receipt == {"message_id": ack["message_id"], "by": alice.user_id, "read_at": read_ack["read_at"]}
    sio.emit("read", {"message_id": at_bob["message_id"]})
    receipt2 = plain.rec.wait_for("read", _id(at_bob["message_id"]))
    assert receipt2["by"] == bob.user_id

    # Same client_id again from the plain client: the same message, not a new one.
    plain.send("send_message", to=bob.user_id, text="hello from plain JSON", client_id=cid)
    sio.rec.assert_none("message", lambda d: d["message_id"] != at_bob["message_id"] and d["from"] == alice.user_id)

    # An unknown action is an error event, and the connection stays usable.
    plain.send("no_such_action")
    err = plain.rec.wait_for("system", lambda d: d.get("type") == "error")
    assert err["code"] == "unknown_event", err
    plain.send("send_message", to=bob.user_id, text="still here", client_id=cid + "-2")
    sio.rec.wait_for("message", lambda d: d.get("client_id") == cid + "-2")
    assert not plain.closed_by_server.is_set()
    assert not plain.rec.of("__unparsable__") and not plain.rec.of("__unexpected__"), plain.raw
