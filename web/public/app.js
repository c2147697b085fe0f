// The chat's web client: the REST API and the stock socket.io-client, exactly as the README
// documents them. No framework: one module, a little state, DOM updates by hand.
//
// Reconnects never duplicate: every message is keyed by message_id (and, before the server
// acked it, by the client_id it was sent with), so a replayed push, an ack and a history
// page that carry the same message update one bubble. Sends carry a client_id, so a resend
// after a reconnect is stored once.

import { io } from "./vendor/socket.io.esm.min.js";

const $ = (id) => document.getElementById(id);
const PAGE = 30;
const SESSION_KEY = "chat.session";

// --------------------------------------------------------------------------- config
// Deployed, config.json (written at deploy time) names the APIs; locally the page, the REST
// API and Socket.IO share one origin.
async function loadConfig() {
  const fallback = { api: location.origin, ws: location.origin, path: "/socket.io/" };
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    if (res.ok) return { ...fallback, ...(await res.json()) };
  } catch {
    // no config: same origin
  }
  return fallback;
}

// --------------------------------------------------------------------------- state
const state = {
  cfg: null,
  session: null, // { token, refresh_token, user_id, display_name, mobile }
  socket: null,
  convs: new Map(), // partner id -> { user, last_message, unread }
  nextConvs: null,
  open: null, // { user, byId: Map, byClient: Map, nextBefore, hasMore, loading }
  typingTimer: null,
  typingSentAt: 0,
  typingStop: null,
  readQueued: null,
};

// --------------------------------------------------------------------------- REST
class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, body, retried = false) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (state.session) headers.authorization = `Bearer ${state.session.token}`;
  const res = await fetch(state.cfg.api + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    if (res.status === 401 && state.session && !retried) {
      // The access token is short-lived: renew it once, then try again.
      const renewed = await refreshSession();
      if (renewed) return api(method, path, body, true);
      if (renewed === false) endSession();
    } else if (res.status === 401 && state.session) endSession();
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message, res.headers.get("retry-after"));
  }
  return data;
}

// One refresh at a time: a refresh token works once, so concurrent 401s share one exchange.
let refreshing = null;

/**
 * Exchanges the refresh token for a new pair: true when renewed, false when the session is
 * over (log in again), null when the server could not be reached (keep the session).
 */
function refreshSession() {
  if (refreshing) return refreshing;
  const session = state.session;
  if (!session || !session.refresh_token) return Promise.resolve(false);
  refreshing = (async () => {
    try {
      const res = await fetch(state.cfg.api + "/users/auth/refresh", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: session.refresh_token }),
      });
      if (state.session !== session) return false;
      if (!res.ok) return res.status === 401 || res.status === 400 ? false : null;
      const r = await res.json();
      session.token = r.token;
      session.refresh_token = r.refresh_token;
      localStorage.setItem(SESSION_KEY, JSON.stringify(session));
      return true;
    } catch {
      return null;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// --------------------------------------------------------------------------- helpers
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("aria-") || k === "role") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function timeLabel(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

function setConn(s) {
  const label = { offline: "Offline", connecting: "Connecting…", online: "Online", reconnecting: "Reconnecting…" }[s];
  const c = $("conn");
  c.dataset.state = s;
  c.textContent = label;
}

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

// --------------------------------------------------------------------------- login
function showLogin() {
  $("app").hidden = true;
  $("me").hidden = true;
  $("login").hidden = false;
  $("phone-form").hidden = false;
  $("code-form").hidden = true;
  $("login-error").textContent = "";
  setConn("offline");
  $("phone-input").focus();
}

let pendingMobile = null;

$("phone-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const mobile = $("phone-input").value.trim();
  try {
    const r = await api("POST", "/users/auth/request_otp", { mobile });
    pendingMobile = r.mobile;
    $("phone-form").hidden = true;
    $("code-form").hidden = false;
    const hint = $("code-hint");
    hint.textContent = "";
    if (r.otp) {
      // Emulated mode: the API returns the code instead of texting it.
      hint.append("Emulated mode: your code is ", el("strong", {}, r.otp));
      $("code-input").value = r.otp;
    } else {
      hint.textContent = `Enter the code sent to ${r.mobile}.`;
      $("code-input").value = "";
    }
    $("code-input").focus();
  } catch (e) {
    $("login-error").textContent =
      e.code === "rate_limited" ? `Too many codes requested; try again in ${e.retryAfter || "a few"} seconds.` : e.message;
  }
});

$("code-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const r = await api("POST", "/users/auth/verify", { mobile: pendingMobile, otp: $("code-input").value.trim() });
    startSession({
      token: r.token,
      refresh_token: r.refresh_token,
      user_id: r.user_id,
      display_name: r.display_name,
      mobile: pendingMobile,
    });
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("code-back").addEventListener("click", () => showLogin());

// --------------------------------------------------------------------------- session
function startSession(session) {
  state.session = session;
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  $("login").hidden = true;
  $("app").hidden = false;
  $("me").hidden = false;
  document.body.dataset.view = "inbox";
  showName(session.display_name);
  connect();
  refreshMe();
  loadConversations();
}

function showName(name) {
  $("me-name").textContent = name;
  $("me-name").setAttribute("aria-label", `Your profile: ${name}`);
  $("name-input").value = name;
}

function toggleProfile(open) {
  $("name-form").hidden = !open;
  $("me-name").setAttribute("aria-expanded", String(open));
  if (open) $("name-input").focus();
}

$("me-name").addEventListener("click", () => toggleProfile($("name-form").hidden));
$("name-form").addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") {
    toggleProfile(false);
    $("me-name").focus();
  }
});

async function refreshMe() {
  try {
    const me = await api("GET", "/users/me");
    state.session.display_name = me.display_name;
    showName(me.display_name);
  } catch {
    // shown on the next action
  }
}

function endSession() {
  if (state.socket) {
    state.socket.removeAllListeners();
    state.socket.io.removeAllListeners();
    state.socket.disconnect();
    state.socket = null;
  }
  state.session = null;
  state.convs.clear();
  state.open = null;
  localStorage.removeItem(SESSION_KEY);
  $("conversations").replaceChildren();
  $("messages").replaceChildren();
  $("chat").hidden = true;
  $("pick").hidden = false;
  showLogin();
}

$("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/users/auth/logout");
  } catch {
    // the token is forgotten here either way
  }
  endSession();
});

$("name-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("name-msg").textContent = "";
  try {
    const me = await api("PATCH", "/users/me", { display_name: $("name-input").value });
    state.session.display_name = me.display_name;
    localStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
    showName(me.display_name);
    $("name-msg").textContent = "Saved.";
  } catch (e) {
    $("name-msg").textContent = e.message;
  }
});

// --------------------------------------------------------------------------- socket
function connect() {
  setConn("connecting");
  const socket = io(state.cfg.ws, {
    path: state.cfg.path,
    addTrailingSlash: state.cfg.path.endsWith("/"),
    transports: ["websocket"],
    // A function: every (re)connect sends the current access token, refreshed or not.
    auth: (cb) => cb({ token: state.session ? state.session.token : "" }),
  });
  state.socket = socket;
  socket.on("connect", () => setConn("online"));
  socket.on("disconnect", (reason) => {
    setConn(reason === "io client disconnect" ? "offline" : "reconnecting");
    showTyping(false);
  });
  socket.io.on("reconnect_attempt", () => setConn("reconnecting"));
  socket.on("connect_error", async (err) => {
    if (err && err.message === "unauthorized") {
      // Refused at CONNECT: the stock client does not retry, so renew the token and retry.
      const renewed = await refreshSession();
      if (renewed === false) endSession();
      else if (state.socket === socket) setTimeout(() => state.socket === socket && socket.connect(), renewed ? 0 : 2000);
    } else setConn(state.socket && state.socket.active ? "reconnecting" : "offline");
  });
  socket.on("system", (n) => {
    // After every (re)connect: catch up on what changed while away.
    if (n && n.type === "welcome") {
      loadConversations();
      if (state.open) catchUp();
    }
  });
  socket.on("message", onMessage);
  socket.on("delivered", (d) => setStatus(d.message_id, "delivered"));
  socket.on("read", (r) => setStatus(r.message_id, "read"));
  socket.on("typing", (t) => {
    if (state.open && t.from === state.open.user.user_id) showTyping(t.typing);
  });
  socket.on("unread", (u) => {
    const c = state.convs.get(u.user_id);
    if (c) {
      c.unread = u.unread;
      renderConversations();
    }
  });
}

// --------------------------------------------------------------------------- conversations
async function loadConversations(more = false) {
  if (!state.session) return;
  try {
    const q = more && state.nextConvs ? `?limit=50&before=${encodeURIComponent(state.nextConvs)}` : "?limit=50";
    const page = await api("GET", "/chat/conversations" + q);
    if (!more) {
      // Keep conversations opened locally that have no message yet.
      for (const [id, c] of state.convs) if (c.last_message) state.convs.delete(id);
    }
    for (const c of page.conversations) {
      const open = state.open && state.open.user.user_id === c.user.user_id;
      state.convs.set(c.user.user_id, { ...c, unread: open && !document.hidden ? 0 : c.unread });
      if (open) state.open.user.display_name = c.user.display_name;
    }
    state.nextConvs = page.next_before;
    $("more-conversations").hidden = !page.has_more;
    renderConversations();
  } catch {
    // next reconnect or action retries
  }
}

$("more-conversations").addEventListener("click", () => loadConversations(true));

function sortedConversations() {
  return [...state.convs.values()].sort((a, b) => {
    const ta = a.last_message ? a.last_message.created_at : "9";
    const tb = b.last_message ? b.last_message.created_at : "9";
    return tb.localeCompare(ta);
  });
}

function renderConversations() {
  const list = $("conversations");
  const items = sortedConversations().map((c) => {
    const last = c.last_message;
    const preview = last ? (last.from === state.session.user_id ? "You: " : "") + last.text : "New conversation";
    const btn = el(
      "button",
      { type: "button", class: "conv", dataset: { userId: c.user.user_id } },
      el("span", { class: "conv-name" }, c.user.display_name),
      el("span", { class: "conv-time" }, last ? timeLabel(last.created_at) : ""),
      el("span", { class: "conv-last" }, preview),
      c.unread > 0 ? el("span", { class: "badge", "aria-label": `${c.unread} unread` }, String(c.unread)) : null,
    );
    if (state.open && state.open.user.user_id === c.user.user_id) btn.setAttribute("aria-current", "true");
    btn.addEventListener("click", () => openConversation(c.user));
    return el("li", {}, btn);
  });
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".conv");
  list.replaceChildren(...items);
  if (focused) {
    const again = list.querySelector(`.conv[data-user-id="${focused.dataset.userId}"]`);
    if (again) again.focus();
  }
  $("inbox-empty").hidden = items.length > 0;
}

$("start-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("start-error").textContent = "";
  try {
    const r = await api("POST", "/chat/conversations", { mobile: $("start-input").value.trim() });
    $("start-input").value = "";
    if (!state.convs.has(r.user.user_id)) state.convs.set(r.user.user_id, { user: r.user, last_message: null, unread: 0 });
    openConversation(r.user);
  } catch (e) {
    $("start-error").textContent =
      e.code === "unknown_user"
        ? "No account uses that number."
        : e.code === "rate_limited"
          ? `Too many lookups; try again in ${e.retryAfter || "a few"} seconds.`
          : e.message;
  }
});

// --------------------------------------------------------------------------- one conversation
function openConversation(user) {
  state.open = { user: { ...user }, byId: new Map(), byClient: new Map(), nextBefore: null, hasMore: false, loading: false };
  document.body.dataset.view = "chat";
  $("chat").hidden = false;
  $("pick").hidden = true;
  $("chat-title").textContent = user.display_name;
  $("messages").replaceChildren();
  $("older").hidden = true;
  showTyping(false);
  renderConversations();
  loadPage(false).then(() => {
    scrollToEnd();
    markRead();
  });
  $("composer-input").focus();
}

$("back").addEventListener("click", () => {
  document.body.dataset.view = "inbox";
  const id = state.open && state.open.user.user_id;
  state.open = null;
  $("chat").hidden = true;
  $("pick").hidden = false;
  renderConversations();
  const btn = id && document.querySelector(`.conv[data-user-id="${id}"]`);
  if (btn) btn.focus();
});

async function loadPage(older) {
  const open = state.open;
  if (!open || open.loading) return;
  open.loading = true;
  try {
    let q = `?limit=${PAGE}`;
    if (older && open.nextBefore) q += `&before=${encodeURIComponent(open.nextBefore)}`;
    const page = await api("GET", `/chat/messages/${open.user.user_id}${q}`);
    if (state.open !== open) return;
    const scroller = $("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    // Oldest first: older pages go on top, the newest page merges in place.
    const items = older ? [...page.messages].reverse() : page.messages;
    for (const m of items) upsertMessage(m, older ? "top" : "sorted");
    if (older || open.nextBefore === null) {
      open.nextBefore = page.next_before;
      open.hasMore = page.has_more;
    }
    $("older").hidden = !open.hasMore;
    if (older) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  } catch {
    // retried on scroll or reconnect
  } finally {
    open.loading = false;
  }
}

// After a reconnect: the newest page again (merged by id), then mark read.
async function catchUp() {
  const atEnd = nearEnd();
  await loadPage(false);
  if (atEnd) scrollToEnd();
  markRead();
}

$("scroller").addEventListener("scroll", () => {
  if ($("scroller").scrollTop < 40 && state.open && state.open.hasMore) loadPage(true);
});
$("older").addEventListener("click", () => loadPage(true));

function nearEnd() {
  const s = $("scroller");
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
}

function scrollToEnd() {
  const s = $("scroller");
  s.scrollTop = s.scrollHeight;
}

function statusOf(m) {
  if (m.read_at) return "read";
  if (m.delivered_at) return "delivered";
  if (m.message_id) return "sent";
  return "sending";
}

const STATUS_TEXT = { sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓" };
const STATUS_LABEL = { sending: "Sending", sent: "Sent", delivered: "Delivered", read: "Read" };
const RANK = { sending: 0, sent: 1, delivered: 2, read: 3 };

function setTick(li, status) {
  const tick = li.querySelector(".tick");
  if (!tick || RANK[status] < RANK[tick.dataset.status]) return;
  tick.dataset.status = status;
  tick.textContent = STATUS_TEXT[status];
  tick.setAttribute("aria-label", STATUS_LABEL[status]);
  tick.title = STATUS_LABEL[status];
  li.dataset.status = status;
}

function setStatus(messageId, status) {
  const li = state.open && state.open.byId.get(messageId);
  if (li) setTick(li, status);
  for (const c of state.convs.values()) {
    if (c.last_message && c.last_message.message_id === messageId) {
      if (status === "read") c.last_message.read_at = c.last_message.read_at || new Date().toISOString();
      if (status === "delivered") c.last_message.delivered_at = c.last_message.delivered_at || new Date().toISOString();
    }
  }
}

// One bubble per message: found by message_id, else by the client_id it was sent with.
function upsertMessage(m, where) {
  const open = state.open;
  let li = (m.message_id && open.byId.get(m.message_id)) || (m.client_id && open.byClient.get(m.client_id));
  const mine = m.from === state.session.user_id;
  if (!li) {
    li = el(
      "li",
      { class: "bubble" + (mine ? " mine" : "") },
      el("span", { class: "text" }, m.text),
      el(
        "span",
        { class: "meta" },
        el("time", {}, timeLabel(m.created_at || new Date().toISOString())),
        mine ? el("span", { class: "tick", dataset: { status: "sending" } }) : null,
      ),
    );
    li.dataset.createdAt = m.created_at || "~";
    const list = $("messages");
    if (where === "top") list.prepend(li);
    else if (where === "end" || !m.created_at) list.append(li);
    else {
      // Sorted insert from the end (new messages are nearly always last).
      let after = list.lastElementChild;
      while (after && after.dataset.createdAt !== "~" && after.dataset.createdAt > m.created_at) after = after.previousElementSibling;
      if (after) after.after(li);
      else list.prepend(li);
    }
  }
  if (m.message_id) {
    li.dataset.messageId = m.message_id;
    open.byId.set(m.message_id, li);
  }
  if (m.created_at) {
    li.dataset.createdAt = m.created_at;
    li.querySelector("time").textContent = timeLabel(m.created_at);
    li.querySelector("time").dateTime = m.created_at;
  }
  if (m.client_id) open.byClient.set(m.client_id, li);
  if (mine) setTick(li, statusOf(m));
  return li;
}

function onMessage(m) {
  const mine = m.from === state.session.user_id;
  const partner = mine ? m.to : m.from;
  const open = state.open && state.open.user.user_id === partner;
  let c = state.convs.get(partner);
  const known = open && state.open.byId.has(m.message_id);
  if (!c) {
    c = { user: { user_id: partner, display_name: "…" }, last_message: null, unread: 0 };
    state.convs.set(partner, c);
    loadConversations(); // fetches the partner's name
  }
  // The server's count already includes messages up to the summary's last one (a push
  // replayed after a reconnect must not count twice).
  const newer = !c.last_message || c.last_message.created_at < m.created_at;
  if (!c.last_message || c.last_message.created_at <= m.created_at) c.last_message = { ...m };
  if (open) {
    const atEnd = nearEnd();
    upsertMessage(m, "sorted");
    if (!mine && !known) {
      showTyping(false);
      if (atEnd || mine) scrollToEnd();
      markRead();
    } else if (mine) scrollToEnd();
  } else if (!mine && newer) {
    c.unread += 1;
  }
  renderConversations();
}

// Marks everything from the open conversation's partner read with one `read {up_to}`.
function markRead() {
  const open = state.open;
  if (!open || document.hidden || !state.socket || !state.socket.connected) return;
  let last = null;
  for (const li of $("messages").children) {
    if (!li.classList.contains("mine") && li.dataset.messageId) last = li.dataset.messageId;
  }
  const c = state.convs.get(open.user.user_id);
  if (c && c.unread) {
    c.unread = 0;
    renderConversations();
  }
  if (!last || open.readUpTo === last) return;
  open.readUpTo = last;
  state.socket.emit("read", { up_to: last });
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) markRead();
});

// --------------------------------------------------------------------------- typing
function showTyping(on) {
  clearTimeout(state.typingTimer);
  $("typing").textContent = on && state.open ? `${state.open.user.display_name} is typing…` : "";
  // A lost `typing:false` must not leave the indicator on forever.
  if (on) state.typingTimer = setTimeout(() => showTyping(false), 6000);
}

function sendTyping(on) {
  if (!state.open || !state.socket || !state.socket.connected) return;
  state.socket.emit("typing", { to: state.open.user.user_id, typing: on });
}

$("composer-input").addEventListener("input", () => {
  const now = Date.now();
  if (now - state.typingSentAt > 2500) {
    state.typingSentAt = now;
    sendTyping(true);
  }
  clearTimeout(state.typingStop);
  state.typingStop = setTimeout(() => {
    state.typingSentAt = 0;
    sendTyping(false);
  }, 3000);
});

// --------------------------------------------------------------------------- sending
$("composer-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $("composer").requestSubmit();
  }
});

$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("composer-input");
  const text = input.value;
  if (!text.trim() || !state.open) return;
  input.value = "";
  clearTimeout(state.typingStop);
  state.typingSentAt = 0;
  sendTyping(false);
  const m = { from: state.session.user_id, to: state.open.user.user_id, text, client_id: newClientId() };
  upsertMessage(m, "end");
  scrollToEnd();
  send(m, state.open);
});

// Sends until acked; the same client_id on every try, so the server stores it once.
function send(m, open) {
  const socket = state.socket;
  if (!socket || state.open !== open) return;
  socket.timeout(8000).emit("send_message", { to: m.to, text: m.text, client_id: m.client_id }, (err, res) => {
    if (err) {
      // No ack (disconnected or slow): resend once connected again.
      if (socket.connected) send(m, open);
      else socket.once("connect", () => send(m, open));
      return;
    }
    if (res && res.error) {
      const li = open.byClient.get(m.client_id);
      if (li) li.querySelector(".meta").append(el("span", { class: "error" }, ` ${res.error.message}`));
      return;
    }
    onMessage(res);
  });
}

// --------------------------------------------------------------------------- start
(async function main() {
  state.cfg = await loadConfig();
  const saved = localStorage.getItem(SESSION_KEY);
  let session = null;
  try {
    session = saved ? JSON.parse(saved) : null;
  } catch {
    session = null;
  }
  if (session && session.token) startSession(session);
  else showLogin();
})();
