// Plain-JSON WebSocket clients (`ws://host/?token=`, frames `{action,...}` in and
// `{event,data}` out), alone and talking with Socket.IO clients.

import { test, afterEach, after } from "node:test";
import assert from "node:assert/strict";
import {
  TEST_TIMEOUT_MS,
  WS_URL,
  assertMessage,
  closeAll,
  connect,
  connectJson,
  emitAck,
  expectNoEvent,
  history,
  login,
  loginMany,
  nextEvent,
  nextEvents,
  nextSystemError,
  sendJson,
  tryHandshake,
} from "./lib.mjs";

afterEach(closeAll);
after(closeAll);

const opts = { timeout: TEST_TIMEOUT_MS };

test("plain-JSON handshake: bad or missing token → HTTP 401; a valid one gets the welcome frame", opts, async () => {
  assert.deepEqual(await tryHandshake(`${WS_URL}/?token=not-a-token`), { opened: false, status: 401 });
  assert.deepEqual(await tryHandshake(`${WS_URL}/?token=${"A".repeat(43)}`), { opened: false, status: 401 });
  assert.deepEqual(await tryHandshake(`${WS_URL}/`), { opened: false, status: 401 });

  const user = await login();
  const ws = await connectJson(user.token);
  const welcome = JSON.parse(ws.rawFrames[0]);
  // `pid` names the recoverable session (`?resume=<pid>:<offset>`); this one is new.
  assert.match(welcome.data.pid, /^[0-9a-f]{24}$/);
  assert.deepEqual(welcome, {
    event: "system",
    data: { type: "welcome", user_id: user.user_id, pending: 0, pid: welcome.data.pid, recovered: false },
  });
});

test("a plain-JSON client and a Socket.IO client chat both ways", opts, async () => {
  const [jane, sam] = await loginMany(2);
  const j = await connectJson(jane.token, { label: "jane(json)" });
  const s = await connect(sam.token, { label: "sam(sio)" });

  // JSON → Socket.IO
  sendJson(j, { action: "send_message", to: sam.user_id, text: "hello from json", client_id: "j-1" });
  const atSam = await nextEvent(s, "message");
  assertMessage(atSam, { from: jane.user_id, to: sam.user_id, text: "hello from json", client_id: "j-1" });
  const echo = await nextEvent(j, "message");
  assert.deepEqual(echo, atSam, "the JSON sender's connection gets the same message object");
  const dj = await nextEvent(j, "delivered");
  assert.equal(dj.message_id, atSam.message_id);
  assert.equal(dj.to, sam.user_id);

  // Socket.IO → JSON
  const ack = await emitAck(s, "send_message", { to: jane.user_id, text: "hello from socket.io" });
  const atJane = await nextEvent(j, "message");
  assert.deepEqual(atJane, ack);
  const ds = await nextEvent(s, "delivered");
  assert.equal(ds.message_id, ack.message_id);

  // Typing both ways.
  sendJson(j, { action: "typing", to: sam.user_id, typing: true });
  assert.deepEqual(await nextEvent(s, "typing"), { from: jane.user_id, typing: true });
  s.emit("typing", { to: jane.user_id, typing: false });
  assert.deepEqual(await nextEvent(j, "typing"), { from: sam.user_id, typing: false });

  // Read both ways.
  sendJson(j, { action: "read", message_id: ack.message_id });
  const jAck = await nextEvent(j, "read_ack");
  assert.equal(jAck.message_id, ack.message_id);
  assert.deepEqual(await nextEvent(s, "read"), { message_id: ack.message_id, by: jane.user_id, read_at: jAck.read_at });
  s.emit("read", { message_id: atSam.message_id });
  const sAck = await nextEvent(s, "read_ack");
  assert.deepEqual(await nextEvent(j, "read"), { message_id: atSam.message_id, by: sam.user_id, read_at: sAck.read_at });

  const h = await history(jane.token, sam.user_id);
  assert.deepEqual(
    h.messages.map((m) => [m.text, m.delivered_at !== null, m.read_at !== null]),
    [
      ["hello from json", true, true],
      ["hello from socket.io", true, true],
    ],
  );
});

test("plain-JSON client: errors arrive as system frames and the connection stays open", opts, async () => {
  const [jane, sam] = await loginMany(2);
  const j = await connectJson(jane.token);
  const s = await connect(sam.token);

  sendJson(j, { action: "frobnicate" });
  await nextSystemError(j, "unknown_event");
  sendJson(j, { action: "send_message", to: sam.user_id, text: "" });
  assert.equal((await nextSystemError(j, "invalid_text")).event, "send_message");
  sendJson(j, { action: "send_message", to: "nope", text: "hi" });
  await nextSystemError(j, "invalid_user_id");
  sendJson(j, { action: "send_message", to: "0123456789abcdef01234567", text: "hi" });
  await nextSystemError(j, "unknown_user");
  await Promise.all([expectNoEvent(s, "message", 300), expectNoEvent(j, "$close", 300)]);

  sendJson(j, { action: "send_message", to: sam.user_id, text: "works" });
  assert.equal((await nextEvent(s, "message")).text, "works");
});

/**
 * One round: Sam (Socket.IO) sends `texts` to Jane while she is offline, and Jane connects
 * with the plain-JSON protocol right after the last ack. Returns undefined when everything
 * matches the contract, else a description of what was seen.
 */
async function offlineJsonRound(round, texts) {
  const [jane, sam] = await loginMany(2);
  const s = await connect(sam.token, { label: `sam#${round}(sio)` });
  const acks = [];
  for (const text of texts) acks.push(await emitAck(s, "send_message", { to: jane.user_id, text }));

  let j;
  try {
    j = await connectJson(jane.token, { label: `jane#${round}(json)`, timeoutMs: 4000 });
  } catch (e) {
    return `round ${round}: no welcome frame (${e.message})`;
  }
  const seen = () => JSON.stringify(j.rawFrames.map((f) => JSON.parse(f).event));
  if (j.welcome.pending !== texts.length) {
    return `round ${round}: welcome.pending ${j.welcome.pending}, expected ${texts.length}`;
  }
  let got;
  try {
    got = await nextEvents(j, "message", texts.length, 2500);
  } catch {
    return `round ${round}: welcome said pending ${texts.length} but the messages never came; frames ${seen()}`;
  }
  const order = j.rawFrames.slice(0, 1 + texts.length).map((f) => JSON.parse(f).event);
  if (JSON.stringify(order) !== JSON.stringify(["system", ...texts.map(() => "message")])) {
    return `round ${round}: frames in order ${JSON.stringify(order)}, expected the welcome first`;
  }
  if (JSON.stringify(got) !== JSON.stringify(acks)) {
    return `round ${round}: messages ${JSON.stringify(got.map((m) => m.text))}, expected ${JSON.stringify(texts)} as acked`;
  }
  // The connection is live: a new message reaches it.
  const live = await emitAck(s, "send_message", { to: jane.user_id, text: "live" });
  try {
    await nextEvent(j, "message", 2500, (m) => m.message_id === live.message_id);
  } catch {
    return `round ${round}: a message sent after the welcome never reached the open connection; frames ${seen()}`;
  }
  const delivered = await nextEvents(s, "delivered", texts.length + 1).catch(() => []);
  const want = [...acks, live].map((m) => m.message_id).sort();
  if (JSON.stringify(delivered.map((d) => d.message_id).sort()) !== JSON.stringify(want)) {
    return `round ${round}: sender got delivered for ${delivered.length} of ${want.length} messages`;
  }
  return undefined;
}

test("plain-JSON client connecting just after messages were sent: welcome (pending = count) first, then every message in order, and it stays reachable", opts, async () => {
  // Several rounds at once, each connecting right after the last ack: the server must not
  // push waiting messages before the welcome, nor lose the connection while it opens.
  const texts = ["a", "b", "c"];
  const outcomes = await Promise.all([0, 1, 2, 3].map((r) => offlineJsonRound(r, texts)));
  assert.deepEqual(outcomes.filter(Boolean), []);
});
