// Messaging between Socket.IO clients: send/ack/echo, delivered, read receipts, typing,
// idempotent client_id, errors, and the history REST view of delivery and read.

import { test, afterEach, after } from "node:test";
import assert from "node:assert/strict";
import {
  TEST_TIMEOUT_MS,
  assertMessage,
  assertTimestamp,
  closeAll,
  connect,
  emitAck,
  expectNoEvent,
  history,
  loginMany,
  nextEvent,
  nextSystemError,
} from "./lib.mjs";

afterEach(closeAll);
after(closeAll);

const opts = { timeout: TEST_TIMEOUT_MS };
const MESSAGE_KEYS = ["client_id", "created_at", "from", "message_id", "text", "to"];

test("two users chat both ways (recipient gets it, sender's connection gets the echo)", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token, { label: "alice" });
  const b = await connect(bob.token, { label: "bob" });
  assert.equal(a.welcome.user_id, alice.user_id);
  assert.equal(b.welcome.user_id, bob.user_id);

  const m1 = await emitAck(a, "send_message", { to: bob.user_id, text: "hi bob" });
  const atBob = await nextEvent(b, "message", undefined, (m) => m.message_id === m1.message_id);
  assertMessage(atBob, { from: alice.user_id, to: bob.user_id, text: "hi bob" });
  const echoA = await nextEvent(a, "message", undefined, (m) => m.message_id === m1.message_id);
  assert.deepEqual(echoA, atBob);

  const m2 = await emitAck(b, "send_message", { to: alice.user_id, text: "hello alice" });
  const atAlice = await nextEvent(a, "message", undefined, (m) => m.message_id === m2.message_id);
  assertMessage(atAlice, { from: bob.user_id, to: alice.user_id, text: "hello alice" });
  const echoB = await nextEvent(b, "message", undefined, (m) => m.message_id === m2.message_id);
  assert.deepEqual(echoB, atAlice);
  assert.notEqual(m1.message_id, m2.message_id);

  // Both directions are one conversation, oldest first, from either side.
  const fromAlice = await history(alice.token, bob.user_id);
  assert.deepEqual(
    fromAlice.messages.map((m) => [m.from, m.text]),
    [
      [alice.user_id, "hi bob"],
      [bob.user_id, "hello alice"],
    ],
  );
  const fromBob = await history(bob.token, alice.user_id);
  assert.deepEqual(
    fromBob.messages.map((m) => m.message_id),
    fromAlice.messages.map((m) => m.message_id),
  );
});

test("send_message ack carries the stored message object", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token);
  const b = await connect(bob.token);

  const before = Date.now();
  const ack = await emitAck(a, "send_message", { to: bob.user_id, text: "with ack", client_id: "ack-1" });
  assert.deepEqual(Object.keys(ack).sort(), MESSAGE_KEYS);
  assertMessage(ack, { from: alice.user_id, to: bob.user_id, text: "with ack", client_id: "ack-1" });
  const created = assertTimestamp(ack.created_at, "created_at");
  assert.ok(Math.abs(created - before) < 60_000, `created_at ${ack.created_at} is not now`);

  // The recipient's event is the same object as the ack.
  const atBob = await nextEvent(b, "message");
  assert.deepEqual(atBob, ack);

  // Without client_id the ack says client_id: null.
  const ack2 = await emitAck(a, "send_message", { to: bob.user_id, text: "no client id" });
  assert.equal(ack2.client_id, null);
  assert.equal(ack2.text, "no client id");
});

test("delivered reaches the sender once the recipient's connection got the message", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token);
  const b = await connect(bob.token);

  const m = await emitAck(a, "send_message", { to: bob.user_id, text: "are you there?" });
  await nextEvent(b, "message", undefined, (x) => x.message_id === m.message_id);
  const d = await nextEvent(a, "delivered");
  assert.deepEqual(Object.keys(d).sort(), ["delivered_at", "message_id", "to"]);
  assert.equal(d.message_id, m.message_id);
  assert.equal(d.to, bob.user_id);
  const at = assertTimestamp(d.delivered_at, "delivered_at");
  assert.ok(at >= Date.parse(m.created_at), "delivered_at precedes created_at");
  // The recipient is not told its own message was delivered.
  await expectNoEvent(b, "delivered", 300);
});

test("read: reader gets read_ack, sender gets the receipt; a third user is refused (forbidden)", opts, async () => {
  const [alice, bob, carol] = await loginMany(3);
  const a = await connect(alice.token, { label: "alice" });
  const b = await connect(bob.token, { label: "bob" });
  const c = await connect(carol.token, { label: "carol" });

  const m = await emitAck(a, "send_message", { to: bob.user_id, text: "read me" });
  await nextEvent(b, "message", undefined, (x) => x.message_id === m.message_id);
  await nextEvent(a, "delivered", undefined, (x) => x.message_id === m.message_id);

  // Carol is neither sender nor recipient: system error + error ack, nothing changes.
  const refused = await emitAck(c, "read", { message_id: m.message_id });
  assert.equal(refused?.error?.code, "forbidden", `ack: ${JSON.stringify(refused)}`);
  assert.equal(typeof refused.error.message, "string");
  const err = await nextSystemError(c, "forbidden");
  assert.equal(err.event, "read");
  assert.equal(typeof err.message, "string");
  await Promise.all([expectNoEvent(a, "read", 400), expectNoEvent(c, "read_ack", 400)]);
  let h = await history(bob.token, alice.user_id);
  assert.equal(h.messages.find((x) => x.message_id === m.message_id).read_at, null);

  // The sender may not mark its own message read either.
  a.emit("read", { message_id: m.message_id });
  await nextSystemError(a, "forbidden");

  // Bob, the recipient, reads it.
  b.emit("read", { message_id: m.message_id });
  const ack = await nextEvent(b, "read_ack");
  assert.deepEqual(Object.keys(ack).sort(), ["message_id", "read_at"]);
  assert.equal(ack.message_id, m.message_id);
  const readAt = assertTimestamp(ack.read_at, "read_at");
  const receipt = await nextEvent(a, "read");
  assert.deepEqual(receipt, { message_id: m.message_id, by: bob.user_id, read_at: ack.read_at });
  assert.ok(readAt >= Date.parse(m.created_at));
  await expectNoEvent(c, "read", 300);

  h = await history(bob.token, alice.user_id);
  assert.equal(h.messages.find((x) => x.message_id === m.message_id).read_at, ack.read_at);
});

test("typing true/false is relayed to the recipient", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token);
  const b = await connect(bob.token);

  a.emit("typing", { to: bob.user_id, typing: true });
  assert.deepEqual(await nextEvent(b, "typing"), { from: alice.user_id, typing: true });
  a.emit("typing", { to: bob.user_id, typing: false });
  assert.deepEqual(await nextEvent(b, "typing"), { from: alice.user_id, typing: false });
  b.emit("typing", { to: alice.user_id, typing: true });
  assert.deepEqual(await nextEvent(a, "typing"), { from: bob.user_id, typing: true });
  // Typing is not echoed back to the typist.
  await expectNoEvent(a, "typing", 300, (t) => t.from === alice.user_id);
});

test("same client_id twice yields one message, acked twice with the same message_id", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token, { label: "alice" });
  const b = await connect(bob.token, { label: "bob" });
  const clientId = `cid-${Date.now()}-${Math.random().toString(36).slice(2)}`;

  const first = await emitAck(a, "send_message", { to: bob.user_id, text: "once", client_id: clientId });
  await nextEvent(b, "message", undefined, (x) => x.message_id === first.message_id);
  await nextEvent(a, "message", undefined, (x) => x.message_id === first.message_id);

  const retry = await emitAck(a, "send_message", { to: bob.user_id, text: "once", client_id: clientId });
  assert.deepEqual(retry, first);
  // The retry is not fanned out again, to either side.
  await Promise.all([expectNoEvent(b, "message", 600), expectNoEvent(a, "message", 600)]);

  // A different client_id is a different message.
  const other = await emitAck(a, "send_message", { to: bob.user_id, text: "once", client_id: `${clientId}-2` });
  assert.notEqual(other.message_id, first.message_id);
  await nextEvent(b, "message", undefined, (x) => x.message_id === other.message_id);

  // The same client_id from another sender is that sender's own, new message.
  const fromBob = await emitAck(b, "send_message", { to: alice.user_id, text: "once", client_id: clientId });
  assert.notEqual(fromBob.message_id, first.message_id);
  assert.equal(fromBob.from, bob.user_id);
  await nextEvent(a, "message", undefined, (x) => x.message_id === fromBob.message_id);

  const h = await history(alice.token, bob.user_id);
  assert.deepEqual(
    h.messages.map((m) => [m.message_id, m.from, m.client_id]),
    [
      [first.message_id, alice.user_id, clientId],
      [other.message_id, alice.user_id, `${clientId}-2`],
      [fromBob.message_id, bob.user_id, clientId],
    ],
  );
});

test("unknown event gets a system unknown_event error and the connection stays usable", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token);
  const b = await connect(bob.token);

  a.emit("frobnicate", { x: 1 });
  const err = await nextSystemError(a, "unknown_event");
  assert.equal(err.type, "error");
  assert.equal(typeof err.message, "string");

  // With an ack, the ack carries the error too.
  const acked = await emitAck(a, "no_such_event", {});
  assert.equal(acked?.error?.code, "unknown_event", JSON.stringify(acked));
  await nextSystemError(a, "unknown_event");

  // Still connected and working.
  assert.equal(a.connected, true);
  const m = await emitAck(a, "send_message", { to: bob.user_id, text: "still here" });
  const got = await nextEvent(b, "message");
  assert.equal(got.message_id, m.message_id);
  await expectNoEvent(a, "$disconnect", 200);
});

test("bad send_message payloads get system errors and store nothing", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token);
  const b = await connect(bob.token);

  const cases = [
    [{ to: bob.user_id, text: "" }, "invalid_text"],
    [{ to: bob.user_id, text: "x".repeat(4001) }, "invalid_text"],
    [{ to: "not-a-user-id", text: "hi" }, "invalid_user_id"],
    [{ to: "0123456789abcdef01234567", text: "hi" }, "unknown_user"],
  ];
  for (const [payload, code] of cases) {
    const ack = await emitAck(a, "send_message", payload);
    assert.equal(ack?.error?.code, code, `${JSON.stringify(payload).slice(0, 80)} → ${JSON.stringify(ack)}`);
    const sys = await nextSystemError(a, code);
    assert.equal(sys.event, "send_message");
  }
  // Fire-and-forget (no ack) still gets the system event.
  a.emit("send_message", { to: bob.user_id, text: "" });
  await nextSystemError(a, "invalid_text");

  await expectNoEvent(b, "message", 300);
  assert.equal((await history(alice.token, bob.user_id)).messages.length, 0);

  // The boundary: exactly 4000 characters is accepted.
  const long = "y".repeat(4000);
  const ok = await emitAck(a, "send_message", { to: bob.user_id, text: long });
  assert.equal(ok.text, long);
  assert.equal((await nextEvent(b, "message")).message_id, ok.message_id);
});

test("after delivery and read, history shows delivered_at and read_at", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token);
  const b = await connect(bob.token);

  const m = await emitAck(a, "send_message", { to: bob.user_id, text: "track me", client_id: "h-1" });
  // Stored at once (delivery may or may not have happened yet).
  let h = await history(alice.token, bob.user_id);
  assert.equal(h.messages.length, 1);
  assert.equal(h.has_more, false);

  await nextEvent(b, "message", undefined, (x) => x.message_id === m.message_id);
  const d = await nextEvent(a, "delivered", undefined, (x) => x.message_id === m.message_id);
  h = await history(alice.token, bob.user_id);
  assert.equal(h.messages[0].delivered_at, d.delivered_at);
  assert.equal(h.messages[0].read_at, null);

  b.emit("read", { message_id: m.message_id });
  const ack = await nextEvent(b, "read_ack");
  await nextEvent(a, "read");

  for (const [token, other] of [
    [alice.token, bob.user_id],
    [bob.token, alice.user_id],
  ]) {
    h = await history(token, other);
    assert.deepEqual(Object.keys(h).sort(), ["has_more", "messages", "next_before"]);
    assert.equal(h.has_more, false);
    assert.equal(h.next_before, null);
    assert.equal(h.messages.length, 1);
    const row = h.messages[0];
    assert.deepEqual(
      { ...row },
      {
        message_id: m.message_id,
        from: alice.user_id,
        to: bob.user_id,
        text: "track me",
        created_at: m.created_at,
        delivered_at: d.delivered_at,
        read_at: ack.read_at,
        client_id: "h-1",
      },
    );
  }
});
