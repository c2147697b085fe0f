"""GET /chat/messages/{other_user_id} reflects what happened in real time."""

import requests

from conftest import HTTP_TIMEOUT, HTTP_URL, history, parse_ts


def _id(message_id):
    return lambda d: d.get("message_id") == message_id


def test_history_shows_delivered_at_and_read_at(peers, users):
    alice, bob = users(2)
    a = peers.sio(alice)

    # Sent while bob is offline: stored, not yet delivered or read.
    ack1 = a.send(bob, "first", client_id="h-1")
    ack2 = a.send(bob, "second", client_id="h-2")
    page = history(alice, bob)
    assert page["has_more"] is False and page["next_before"] is None, page
    assert [m["message_id"] for m in page["messages"]] == [ack1["message_id"], ack2["message_id"]]
    for m, ack in zip(page["messages"], (ack1, ack2)):
        assert {k: m[k] for k in ack} == ack, (m, ack)
        assert m["delivered_at"] is None and m["read_at"] is None, m

    # Bob connects: both are delivered; the history carries the same delivered_at.
    b = peers.sio(bob)
    assert b.welcome["pending"] == 2
    receipts = {d["message_id"]: d for d in a.rec.wait_n("delivered", 2)}
    # Bob reads the first one.
    b.emit("read", {"message_id": ack1["message_id"]})
    receipt = a.rec.wait_for("read", _id(ack1["message_id"]))

    for viewer, other in ((alice, bob), (bob, alice)):  # both sides see the same thing
        msgs = history(viewer, other)["messages"]
        assert [m["message_id"] for m in msgs] == [ack1["message_id"], ack2["message_id"]]
        first, second = msgs
        assert first["delivered_at"] == receipts[ack1["message_id"]]["delivered_at"], first
        assert second["delivered_at"] == receipts[ack2["message_id"]]["delivered_at"], second
        assert first["read_at"] == receipt["read_at"], first
        assert second["read_at"] is None, second
        assert parse_ts(first["created_at"]) <= parse_ts(first["delivered_at"]) <= parse_ts(first["read_at"])

    # A live message to an online recipient is delivered at once.
    ack3 = b.send(alice, "third")
    delivered3 = b.rec.wait_for("delivered", _id(ack3["message_id"]))
    last = history(alice, bob)["messages"][-1]
    assert last["message_id"] == ack3["message_id"]
    assert last["from"] == bob.user_id and last["client_id"] is None
    assert last["delivered_at"] == delivered3["delivered_at"] and last["read_at"] is None


def test_history_requires_a_valid_token(users):
    alice, bob = users(2)
    url = f"{HTTP_URL}/chat/messages/{bob.user_id}"
    for headers in ({}, {"Authorization": "not-a-real-token"}):
        r = requests.get(url, headers=headers, timeout=HTTP_TIMEOUT)
        assert r.status_code == 401, (headers, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthorized", r.text
