// Connection life cycle with the stock Socket.IO client: authentication, offline delivery
// with the welcome's pending count, several devices, heartbeats, and abrupt disconnects.

import { test, afterEach, after } from "node:test";
import assert from "node:assert/strict";
import {
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  assertMessage,
  closeAll,
  connect,
  connectJson,
  emitAck,
  expectNoEvent,
  history,
  http,
  login,
  loginMany,
  nextEvent,
  nextEvents,
  sioClient,
  sleep,
} from "./lib.mjs";

afterEach(closeAll);
after(closeAll);

const opts = { timeout: TEST_TIMEOUT_MS };

/** Connects a client expected to be refused; resolves with the connect_error. */
function connectError(token, timeoutMs = 5000) {
  const s = sioClient(token);
  const outcome = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("neither connect nor connect_error")), timeoutMs);
    s.once("connect_error", (err) => {
      clearTimeout(timer);
      resolve({ socket: s, err });
    });
    s.once("connect", () => {
      clearTimeout(timer);
      reject(new Error("connected with a bad token"));
    });
  });
  s.connect();
  return outcome;
}

test("invalid or missing token: connect_error \"unauthorized\"", opts, async () => {
  const bad = await connectError("definitely-not-a-valid-token");
  assert.equal(bad.err.message, "unauthorized");
  assert.equal(bad.socket.connected, false);

  const none = await connectError(undefined);
  assert.equal(none.err.message, "unauthorized");

  // A well-formed but unknown token (same shape as real ones: 43 base64url chars).
  const unknown = await connectError("A".repeat(43));
  assert.equal(unknown.err.message, "unauthorized");

  // A real token still works (the refusals above are about the token).
  const user = await login();
  const ok = await connect(user.token);
  assert.equal(ok.welcome.user_id, user.user_id);
});

test("offline recipient gets every waiting message in order on connect, then the sender gets delivered", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token, { label: "alice" });
  const texts = ["one", "two", "three", "four", "five"];
  const acks = [];
  for (const text of texts) acks.push(await emitAck(a, "send_message", { to: bob.user_id, text }));
  // Nobody took them: no delivered yet, and history shows them undelivered.
  await expectNoEvent(a, "delivered", 500);
  const before = await history(alice.token, bob.user_id);
  assert.deepEqual(
    before.messages.map((m) => [m.text, m.delivered_at]),
    texts.map((t) => [t, null]),
  );

  const b = await connect(bob.token, { label: "bob" });
  assert.deepEqual(b.welcome, { type: "welcome", user_id: bob.user_id, pending: texts.length });
  const got = await nextEvents(b, "message", texts.length);
  assert.deepEqual(
    got.map((m) => m.message_id),
    acks.map((m) => m.message_id),
    "messages arrive oldest first",
  );
  got.forEach((m, i) => assertMessage(m, { from: alice.user_id, to: bob.user_id, text: texts[i] }));
  assert.deepEqual(
    b.inbox.log.slice(0, 1 + texts.length),
    ["system", ...texts.map(() => "message")],
    "the welcome comes first, then the messages",
  );
  await expectNoEvent(b, "message", 300);

  const delivered = await nextEvents(a, "delivered", texts.length);
  assert.deepEqual(
    delivered.map((d) => d.message_id).sort(),
    acks.map((m) => m.message_id).sort(),
  );
  for (const d of delivered) assert.equal(d.to, bob.user_id);

  // A second connection now has nothing pending.
  const b2 = await connect(bob.token, { label: "bob-2" });
  assert.equal(b2.welcome.pending, 0);
  await expectNoEvent(b2, "message", 400);
});

test("two devices of one user both receive, and both see the user's own sends", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token, { label: "alice" });
  const phone = await connect(bob.token, { label: "bob-phone" });
  const laptop = await connect(bob.token, { label: "bob-laptop" });

  const m = await emitAck(a, "send_message", { to: bob.user_id, text: "to every device" });
  const onPhone = await nextEvent(phone, "message");
  const onLaptop = await nextEvent(laptop, "message");
  assert.deepEqual(onPhone, m);
  assert.deepEqual(onLaptop, m);
  // Delivered once, although two connections took it.
  await nextEvent(a, "delivered", undefined, (d) => d.message_id === m.message_id);
  await expectNoEvent(a, "delivered", 400);

  // Bob replies from the phone: the laptop gets the echo, Alice the message.
  const r = await emitAck(phone, "send_message", { to: alice.user_id, text: "from my phone" });
  assert.deepEqual(await nextEvent(laptop, "message"), r);
  assert.deepEqual(await nextEvent(phone, "message"), r);
  assert.deepEqual(await nextEvent(a, "message", undefined, (x) => x.message_id === r.message_id), r);

  // Typing reaches both devices.
  a.emit("typing", { to: bob.user_id, typing: true });
  assert.deepEqual(await nextEvent(phone, "typing"), { from: alice.user_id, typing: true });
  assert.deepEqual(await nextEvent(laptop, "typing"), { from: alice.user_id, typing: true });
});

test(
  "a client stays connected across at least 4 ping intervals",
  { timeout: PING_INTERVAL_MS * 7 + PING_TIMEOUT_MS + 10_000 },
  async () => {
    const [alice, bob] = await loginMany(2);
    const a = await connect(alice.token, { label: "alice" });
    const b = await connect(bob.token, { label: "bob" });
    let pings = 0;
    a.io.engine.on("ping", () => pings++);

    // Stay idle for at least 4 intervals and until 4 server pings were answered (the
    // engine answers each with a pong), bounded by 7 intervals.
    const started = Date.now();
    const deadline = started + PING_INTERVAL_MS * 7;
    while ((pings < 4 || Date.now() - started < PING_INTERVAL_MS * 4) && Date.now() < deadline) {
      await sleep(100);
    }
    assert.ok(pings >= 4, `expected ≥ 4 server pings in ${Date.now() - started} ms, got ${pings}`);
    assert.equal(a.connected, true);
    await Promise.all([expectNoEvent(a, "$disconnect", 300), expectNoEvent(b, "$disconnect", 300)]);

    // Still fully usable both ways.
    const m = await emitAck(a, "send_message", { to: bob.user_id, text: "still alive" });
    assert.equal((await nextEvent(b, "message")).message_id, m.message_id);
    const r = await emitAck(b, "send_message", { to: alice.user_id, text: "me too" });
    assert.equal((await nextEvent(a, "message", undefined, (x) => x.from === bob.user_id)).message_id, r.message_id);
  },
);

test(
  "a client that stops answering pings is dropped by the server",
  { timeout: (PING_INTERVAL_MS + PING_TIMEOUT_MS) * 3 + 10_000 },
  async () => {
    const user = await login();
    const s = await connect(user.token);
    const engine = s.io.engine;
    // Swallow our pongs (engine.io-client answers a ping with a "pong" packet).
    const send = (engine._sendPacket ?? engine.sendPacket).bind(engine);
    const patched = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
    if (engine._sendPacket) engine._sendPacket = patched;
    else engine.sendPacket = patched;

    const reason = await nextEvent(s, "$disconnect", (PING_INTERVAL_MS + PING_TIMEOUT_MS) * 3 + 2000);
    // The server closed the transport (not our client's own ping timeout or disconnect).
    assert.equal(reason, "transport close");
    assert.equal(s.connected, false);
  },
);

test("a vanished client (TCP destroyed) gets the messages sent meanwhile on reconnect", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const a = await connect(alice.token, { label: "alice" });
  const b1 = await connect(bob.token, { label: "bob-1" });

  // Warm-up message, delivered while connected.
  const warm = await emitAck(a, "send_message", { to: bob.user_id, text: "before" });
  await nextEvent(b1, "message", undefined, (x) => x.message_id === warm.message_id);
  await nextEvent(a, "delivered", undefined, (x) => x.message_id === warm.message_id);

  // Pull the plug: destroy the TCP socket under the engine's websocket (no close frame).
  const tcp = b1.io.engine.transport.ws._socket;
  assert.ok(tcp && typeof tcp.destroy === "function", "cannot reach the underlying TCP socket");
  tcp.destroy();
  await nextEvent(b1, "$disconnect", 3000);

  const texts = ["while away 1", "while away 2", "while away 3"];
  const acks = [];
  for (const text of texts) acks.push(await emitAck(a, "send_message", { to: bob.user_id, text }));
  await Promise.all([expectNoEvent(a, "delivered", 500), expectNoEvent(b1, "message", 500)]);

  const b2 = await connect(bob.token, { label: "bob-2" });
  assert.equal(b2.welcome.pending, texts.length, `welcome: ${JSON.stringify(b2.welcome)}`);
  const got = await nextEvents(b2, "message", texts.length);
  assert.deepEqual(got.map((m) => m.text), texts);
  assert.deepEqual(got.map((m) => m.message_id), acks.map((m) => m.message_id));
  const delivered = await nextEvents(a, "delivered", texts.length);
  assert.deepEqual(delivered.map((d) => d.message_id).sort(), acks.map((m) => m.message_id).sort());
});

test("logout ends that session's sockets (Socket.IO: \"io server disconnect\", JSON: unauthorized + close); other sessions stay", opts, async () => {
  const user = await login();
  // A second login of the same number: another session of the same user.
  const other = await login(user.mobile);
  assert.equal(other.user_id, user.user_id);
  const sio = await connect(user.token, { label: "session-1 sio" });
  const json = await connectJson(user.token, { label: "session-1 json" });
  const keep = await connect(other.token, { label: "session-2 sio" });

  const out = await http("POST", "/users/auth/logout", { token: user.token });
  assert.equal(out.status, 204);

  assert.equal(await nextEvent(sio, "$disconnect"), "io server disconnect");
  const notice = await nextEvent(json, "system", undefined, (d) => d?.type === "error");
  assert.equal(notice.code, "unauthorized");
  await nextEvent(json, "$close");

  // The stock client does not reconnect after a server disconnect; a new attempt with the
  // dead token is refused.
  const again = await connectError(user.token);
  assert.equal(again.err.message, "unauthorized");

  // The other session's socket still works: it gets a message sent to the user.
  const friend = await login();
  const f = await connect(friend.token);
  const ack = await emitAck(f, "send_message", { to: user.user_id, text: "still here?" });
  assert.ok(ack.message_id, JSON.stringify(ack));
  const got = await nextEvent(keep, "message", undefined, (m) => m.message_id === ack.message_id);
  assert.equal(got.from, friend.user_id);
  assert.equal(keep.connected, true);
});
