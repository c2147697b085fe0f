// The stock socket.io-client across a session refresh. Run by the Rust e2e test
// `socket_io_client_across_a_session_refresh` against a stack whose access tokens live 2
// seconds: the client keeps its token in a variable, passes `auth` as a function (so every
// reconnect sends the current token), and renews the token with POST /users/auth/refresh.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { closeAll, emitAck, http, login, nextEvent, sioClient } from "../lib.mjs";

after(closeAll);

const opts = { timeout: 30000 };

/** Polls until `token` no longer opens `GET /users/me`. */
async function expired(token) {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if ((await http("GET", "/users/me", { token })).status === 401) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail("the access token never expired");
}

function once(socket, event, timeoutMs = 6000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, (v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

test("a socket.io-client reconnects with the refreshed token and keeps chatting", opts, async () => {
  const me = await login();
  const session = { token: me.token, refresh: me.refresh_token };
  const socket = sioClient(undefined, {
    auth: (cb) => cb({ token: session.token }),
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
  });
  const connected = once(socket, "connect");
  socket.connect();
  await connected;
  await nextEvent(socket, "system", undefined, (d) => d?.type === "welcome");

  // The access token expires; the socket, which belongs to the login session, stays.
  await expired(me.token);
  assert.equal(socket.connected, true);

  // A static `auth` holding the expired token is refused now.
  const stale = sioClient(me.token);
  const refused = once(stale, "connect_error");
  stale.connect();
  assert.equal((await refused).message, "unauthorized");

  // Renew, then lose the transport (as at API Gateway's 2-hour cap): the client reconnects
  // on its own with the new token.
  const r = await http("POST", "/users/auth/refresh", { body: { refresh_token: session.refresh } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.notEqual(r.body.token, me.token);
  session.token = r.body.token;
  session.refresh = r.body.refresh_token;
  const back = once(socket, "connect");
  socket.io.engine.close();
  await back;
  // Its session came back (connection state recovery), under the new token.
  assert.equal(socket.recovered, true);

  // A friend who logs in now (their token is fresh too).
  const friend = await login();
  const f = sioClient(friend.token);
  const fc = once(f, "connect");
  f.connect();
  await fc;
  const ack = await emitAck(f, "send_message", { to: me.user_id, text: "after the refresh" });
  assert.ok(ack.message_id, JSON.stringify(ack));
  const got = await nextEvent(socket, "message", undefined, (m) => m.message_id === ack.message_id);
  assert.equal(got.text, "after the refresh");
  const mine = await emitAck(socket, "send_message", { to: friend.user_id, text: "and back" });
  assert.ok(mine.message_id, JSON.stringify(mine));
});
