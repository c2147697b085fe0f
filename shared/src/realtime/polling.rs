//! Engine.IO v4 long-polling over the HTTP API, and the upgrade from it to the WebSocket API:
//! what lets stock clients connect with their default options.
//!
//! - `GET /socket.io/?EIO=4&transport=polling` opens a session: the open packet, with
//!   `upgrades: ["websocket"]`, is the answer. The session is an ordinary `connections`
//!   record whose id is [`ConnectionId::polling`], so the chat addresses it like any
//!   connection; [`crate::push::Pusher`] queues its packets in `poll_queue`.
//! - `POST …&sid=` carries client packets (record-separated) into the same runtime the
//!   WebSocket functions run ([`runtime::frame`]), one after the other.
//! - `GET …&sid=` long-polls: it answers with everything queued as soon as something is
//!   (a change stream on `poll_queue` wakes it), or with a ping when one is due, so it
//!   never waits longer than the ping interval (capped at [`MAX_WAIT`], inside API Gateway's
//!   integration timeout). One `GET` at a time: a second one ends the session.
//! - Upgrade: a WebSocket `$connect` with the session's `sid` is recorded in
//!   `poll_upgrades`; its `2probe` is answered with `3probe` (and a pending `GET` ended with
//!   a noop); its `5` makes it the session's transport (`ws_id` on the record, set once) and
//!   hands over whatever was queued, in order. From then on the session's packets are
//!   posted to that connection, and its frames run as the session's.

use std::time::Duration;

use bson::doc;
use futures::StreamExt;
use mongodb::options::ReturnDocument;

use crate::domain::ConnectionId;
use crate::error::{Error, Result};
use crate::push::NOOP;
use crate::realtime::connections;
use crate::realtime::sio_env::{AppEnv, state_of};
use crate::socketio::runtime::{
    self, EngineApp, EngineConfig, Env, Frame, Handshake, SessionState, Sid,
};
use crate::store::{PollPacketDoc, PollUpgradeDoc};
use crate::time;

/// The longest a `GET` waits for packets: well inside API Gateway's 30-second integration
/// timeout. With the default ping interval (25 s) the ping comes first.
pub const MAX_WAIT: Duration = Duration::from_secs(25);

/// A pending `GET` holds the session this much longer than it waits (a function that died
/// mid-poll releases it then).
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How long a `GET` that arrives while an upgrade is probed waits before its noop.
const PROBING_WAIT: Duration = Duration::from_millis(100);

/// Most packets one `GET` answer carries; the rest wait for the next.
const MAX_PACKETS: i64 = 500;

/// An HTTP answer of the polling transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollReply {
    pub status: u16,
    /// `text/plain` for packets and `ok`, JSON (`{"error":…}`) for refusals.
    pub json: bool,
    pub body: String,
}

impl PollReply {
    fn packets(body: String) -> Self {
        Self {
            status: 200,
            json: false,
            body,
        }
    }

    fn refused(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            json: true,
            body: crate::http::error_body(code, message),
        }
    }

    fn unknown_session() -> Self {
        Self::refused(400, "unknown_sid", "Session ID unknown")
    }
}

/// What the request asks, from its method and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other,
}

/// One polling request: `query` looks a query parameter up.
pub async fn serve<'q, A>(
    env: &AppEnv<'_>,
    app: &A,
    cfg: &EngineConfig,
    method: Method,
    query: impl Fn(&str) -> Option<&'q str>,
    body: &[u8],
) -> Result<PollReply>
where
    A: for<'e> EngineApp<AppEnv<'e>>,
{
    if query("EIO") != Some("4") {
        return Ok(PollReply::refused(
            400,
            "unsupported_protocol",
            "only Engine.IO protocol 4 (EIO=4: Socket.IO v3/v4 clients) is supported",
        ));
    }
    if query("transport") != Some("polling") {
        return Ok(PollReply::refused(
            400,
            "unknown_transport",
            "plain HTTP requests are the polling transport (transport=polling)",
        ));
    }
    match (method, query("sid")) {
        (Method::Get, None) => handshake(env, cfg).await,
        (Method::Get, Some(sid)) => poll(env, cfg, sid).await,
        (Method::Post, Some(sid)) => push(env, app, cfg, sid, body).await,
        _ => Ok(PollReply::refused(
            400,
            "bad_handshake_method",
            "a session is opened with GET",
        )),
    }
}

/// Opens a session: the record, opened at once (the open packet is this answer).
async fn handshake(env: &AppEnv<'_>, cfg: &EngineConfig) -> Result<PollReply> {
    let sid = Sid::new();
    let id = ConnectionId::polling(&sid.to_string())?;
    env.create(&id, sid).await?;
    env.claim_open(&id).await?;
    Ok(PollReply::packets(
        crate::socketio::codec::open_packet_upgrading(
            sid,
            cfg.ping_interval,
            cfg.ping_timeout,
            cfg.max_payload,
            true,
        ),
    ))
}

/// The session's record, if it is a polling session that has not upgraded.
async fn polling_session(
    env: &AppEnv<'_>,
    sid: &str,
) -> Result<Option<(ConnectionId, crate::store::ConnectionDoc)>> {
    let Ok(id) = ConnectionId::polling(sid) else {
        return Ok(None);
    };
    Ok(connections::get(env.app, &id)
        .await?
        .filter(|d| d.ws_id.is_none())
        .map(|d| (id, d)))
}

/// Whether a session has been silent (no pong) for longer than a ping interval and timeout.
fn timed_out(state: &SessionState, cfg: &EngineConfig, now_ms: i64) -> bool {
    now_ms - state.last_seen_ms > (cfg.ping_interval + cfg.ping_timeout).as_millis() as i64
}

/// `POST`: the client's packets, in order, through the runtime.
async fn push<A>(
    env: &AppEnv<'_>,
    app: &A,
    cfg: &EngineConfig,
    sid: &str,
    body: &[u8],
) -> Result<PollReply>
where
    A: for<'e> EngineApp<AppEnv<'e>>,
{
    let Some((id, record)) = polling_session(env, sid).await? else {
        return Ok(PollReply::unknown_session());
    };
    if record.session_expired(time::now()) {
        // The login session ended: the client hears so (Socket.IO: a DISCONNECT) on its
        // next poll, then the close.
        crate::realtime::outbox::end_connection(env.app, &id, record.protocol).await;
        return Ok(PollReply::packets("ok".into()));
    }
    if body.len() as u64 > cfg.max_payload {
        runtime::close(env, &id).await?;
        return Ok(PollReply::refused(
            413,
            "payload_too_large",
            "the payload is larger than maxPayload",
        ));
    }
    let frames = std::str::from_utf8(body)
        .map_err(|e| crate::socketio::codec::ProtocolError::Malformed(e.to_string()))
        .and_then(runtime::decode_payload);
    let frames = match frames {
        Ok(frames) => frames,
        Err(e) => {
            runtime::protocol_close(env, &id, e).await?;
            return Ok(PollReply::refused(400, "bad_request", "invalid packet"));
        }
    };
    let mut state = state_of(&record);
    for (i, frame) in frames.into_iter().enumerate() {
        if matches!(&frame, Frame::Text(t) if t == "1") {
            // The client closes: a pending `GET` ends with a noop (and only that: no close
            // packet goes back to a client that closed), the session goes.
            let _ = env.app.pusher.enqueue(&id, NOOP.to_owned()).await;
            env.forget(&id).await?;
            break;
        }
        if i > 0 {
            // The previous packet may have changed the session (a CONNECT joins).
            match connections::get(env.app, &id).await? {
                Some(d) => state = state_of(&d),
                None => break,
            }
        }
        Box::pin(runtime::frame(env, app, &id, &state, frame)).await?;
    }
    Ok(PollReply::packets("ok".into()))
}

/// `GET`: waits for packets (or the next ping) and answers with them.
async fn poll(env: &AppEnv<'_>, cfg: &EngineConfig, sid: &str) -> Result<PollReply> {
    let Ok(id) = ConnectionId::polling(sid) else {
        return Ok(PollReply::unknown_session());
    };
    let app = env.app;
    let now = time::now();
    let started = std::time::Instant::now();
    let wait = cfg.ping_interval.min(MAX_WAIT);
    let lease_until =
        time::to_bson(now + chrono::TimeDelta::from_std(wait + LEASE_MARGIN).unwrap_or_default());
    let now_b = time::to_bson(now);
    let claimed = app
        .store
        .connections
        .find_one_and_update(
            doc! {
                "_id": id.as_str(),
                "ws_id": { "$exists": false },
                "$or": [ { "poll_until": { "$exists": false } }, { "poll_until": { "$lt": now_b } } ],
            },
            doc! { "$set": { "poll_until": lease_until } },
        )
        .return_document(ReturnDocument::After)
        .await?;
    let Some(record) = claimed else {
        if let Some((_, _)) = polling_session(env, sid).await? {
            // Another `GET` is pending: that breaks the protocol and ends the session (the
            // pending one answers with the close packet).
            tracing::info!(connection = %id, "concurrent poll; closing the session");
            runtime::close(env, &id).await?;
            return Ok(PollReply::refused(
                400,
                "concurrent_poll",
                "another poll request is pending",
            ));
        }
        return Ok(PollReply::unknown_session());
    };
    let state = state_of(&record);
    if timed_out(&state, cfg, now.timestamp_millis()) {
        runtime::close(env, &id).await?;
        let _ = take(env, &id).await;
        return Ok(PollReply::unknown_session());
    }
    let ping_due_ms =
        state.last_ping_ms.unwrap_or(state.connected_at_ms) + cfg.ping_interval.as_millis() as i64;
    let mut deadline = started
        + Duration::from_millis(u64::try_from(ping_due_ms - now.timestamp_millis()).unwrap_or(0))
            .min(MAX_WAIT);
    if record.probing {
        // An upgrade is being probed: its `5` (then this request is refused) or a noop
        // soon, as the reference server sends them while the client pauses polling.
        deadline = deadline.min(started + PROBING_WAIT);
    }

    // Watch before looking, so nothing queued in between is missed.
    let mut changes = app
        .store
        .poll_queue
        .watch()
        .pipeline([doc! { "$match": {
            "operationType": "insert",
            "fullDocument.conn": id.as_str(),
        } }])
        .await
        .map_err(|e| tracing::warn!(error = %e, "no change stream; polling the queue"))
        .ok();
    let packets = loop {
        let packets = take(env, &id).await?;
        if !packets.is_empty() && packets.iter().all(|p| p == NOOP) && upgraded(env, &id).await? {
            // The session moved to its WebSocket connection while this request waited.
            return Ok(PollReply::unknown_session());
        }
        if !packets.is_empty() {
            break packets;
        }
        let now_i = std::time::Instant::now();
        if now_i >= deadline && record.probing {
            // The upgrade is under way: end this request so the client can complete it.
            break vec![NOOP.to_owned()];
        }
        if now_i >= deadline {
            // Nothing to say: the ping that is due.
            let at = env.now_ms();
            env.pinged(std::slice::from_ref(&id), at).await?;
            break vec![crate::socketio::codec::ping()];
        }
        let left = deadline - now_i;
        match changes.as_mut() {
            Some(stream) => match tokio::time::timeout(left, stream.next()).await {
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "change stream failed; polling the queue");
                    changes = None;
                }
                Ok(None) => changes = None,
            },
            None => tokio::time::sleep(left.min(Duration::from_millis(25))).await,
        }
    };
    drop(changes);
    app.store
        .connections
        .update_one(
            doc! { "_id": id.as_str(), "poll_until": lease_until },
            doc! { "$unset": { "poll_until": "" } },
        )
        .await?;
    if packets.iter().any(|p| p == "1") {
        // The server closed the session: this answer is its last.
        env.forget(&id).await?;
    }
    Ok(PollReply::packets(runtime::encode_payload(&packets)))
}

/// Whether the session has upgraded.
async fn upgraded(env: &AppEnv<'_>, id: &ConnectionId) -> Result<bool> {
    Ok(connections::get(env.app, id)
        .await?
        .is_some_and(|d| d.ws_id.is_some()))
}

/// Takes what is queued for a session, oldest first.
async fn take(env: &AppEnv<'_>, id: &ConnectionId) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let queue = &env.app.store.poll_queue;
    let docs: Vec<PollPacketDoc> = queue
        .find(doc! { "conn": id.as_str() })
        .sort(doc! { "_id": 1 })
        .limit(MAX_PACKETS)
        .await?
        .try_collect()
        .await?;
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<_> = docs.iter().map(|d| d.id).collect();
    queue.delete_many(doc! { "_id": { "$in": ids } }).await?;
    let mut packets: Vec<String> = docs.into_iter().map(|d| d.packet).collect();
    // A close ends the payload: nothing after it reaches the client.
    if let Some(close) = packets.iter().position(|p| p == "1") {
        packets.truncate(close + 1);
    }
    Ok(packets)
}

/// A WebSocket `$connect` of an Engine.IO client: with a `sid`, the upgrade of that
/// long-polling session; without, the runtime's handshake of a new session.
pub async fn ws_handshake(
    env: &AppEnv<'_>,
    ws: &ConnectionId,
    eio: Option<&str>,
    transport: Option<&str>,
    sid: Option<&str>,
) -> Result<Handshake> {
    match sid {
        Some(sid) if eio == Some("4") && transport == Some("websocket") => {
            Ok(if ws_connect(env, ws, sid).await? {
                Handshake::Accepted
            } else {
                Handshake::Refused(400, "Session ID unknown")
            })
        }
        _ => runtime::handshake(env, ws, eio, transport).await,
    }
}

/// A WebSocket `$connect` carrying a polling session's `sid`: accepted (the upgrade may
/// start) while the session polls; refused when it is unknown; accepted and then closed
/// (as the reference server does) when another connection carries it already.
async fn ws_connect(env: &AppEnv<'_>, ws: &ConnectionId, sid: &str) -> Result<bool> {
    let Ok(id) = ConnectionId::polling(sid) else {
        return Ok(false);
    };
    match connections::get(env.app, &id).await? {
        None => return Ok(false),
        // Carried by, or being probed by, another connection: one upgrade at a time.
        Some(d) if d.ws_id.is_some() || d.probing => {
            env.app
                .invoker
                .invoke_async(&crate::task::Task::Close {
                    connection_id: ws.clone(),
                })
                .await?;
            return Ok(true);
        }
        Some(_) => {}
    }
    let expires_at = time::to_bson(
        time::now()
            + chrono::TimeDelta::from_std(connections::MAX_CONNECTION_AGE).unwrap_or_default(),
    );
    env.app
        .store
        .poll_upgrades
        .replace_one(
            doc! { "_id": ws.as_str() },
            PollUpgradeDoc {
                ws_id: ws.as_str().to_owned(),
                conn: id.as_str().to_owned(),
                expires_at,
            },
        )
        .upsert(true)
        .await?;
    Ok(true)
}

/// The polling session a WebSocket connection probes or carries, if any.
pub async fn upgrade_of(env: &AppEnv<'_>, ws: &ConnectionId) -> Result<Option<ConnectionId>> {
    let up = env
        .app
        .store
        .poll_upgrades
        .find_one(doc! { "_id": ws.as_str() })
        .await?;
    Ok(up.and_then(|u| ConnectionId::parse(&u.conn).ok()))
}

/// A frame on a WebSocket connection that probes or carries the polling session `id`.
pub async fn ws_frame<A>(
    env: &AppEnv<'_>,
    app: &A,
    ws: &ConnectionId,
    id: &ConnectionId,
    frame: Frame,
) -> Result<()>
where
    A: for<'e> EngineApp<AppEnv<'e>>,
{
    let pusher = &env.app.pusher;
    let Some(record) = connections::get(env.app, id).await? else {
        let _ = pusher.close(ws).await;
        return Ok(());
    };
    match record.ws_id.as_deref() {
        None => match &frame {
            Frame::Text(t) if t == "2probe" => {
                // Marked before the answer: a `GET` that comes later sees it; one pending
                // now (claimed before) gets a noop, so the client can pause polling.
                let marked = env
                    .app
                    .store
                    .connections
                    .find_one_and_update(
                        doc! { "_id": id.as_str() },
                        doc! { "$set": { "probing": true } },
                    )
                    // The post-image: under concurrent writes the pre-image can be stale.
                    .return_document(mongodb::options::ReturnDocument::After)
                    .await?;
                let polling_now = marked
                    .and_then(|d| d.poll_until)
                    .is_some_and(|until| until > time::to_bson(time::now()));
                if polling_now {
                    pusher.enqueue(id, NOOP.into()).await.map_err(Error::Push)?;
                }
                pusher
                    .post(ws, "3probe".into())
                    .await
                    .map_err(Error::Push)?;
            }
            // `5` completes the upgrade. Frames run concurrently (as API Gateway invokes
            // them), so a frame the client sent after its `5` may come first: it completes
            // the upgrade too, then runs as the session's.
            _ => {
                if !take_over(env, id, ws).await? {
                    let _ = pusher.close(ws).await;
                    return Ok(());
                }
                let upgrade_packet = matches!(&frame, Frame::Text(t) if t == "5");
                if !upgrade_packet && let Some(record) = connections::get(env.app, id).await? {
                    let state = state_of(&record);
                    Box::pin(runtime::frame(env, app, id, &state, frame)).await?;
                }
            }
        },
        Some(_) if record.session_expired(time::now()) => {
            crate::realtime::outbox::end_connection(env.app, id, record.protocol).await;
        }
        Some(carrier) if carrier == ws.as_str() => {
            let state = state_of(&record);
            Box::pin(runtime::frame(env, app, id, &state, frame)).await?;
        }
        // Another connection carries the session.
        Some(_) => {
            let _ = pusher.close(ws).await;
        }
    }
    Ok(())
}

/// Makes `ws` the transport of the polling session `id`, once: the queue is handed over,
/// and a `GET` still pending is woken (it then finds the session upgraded). Returns whether
/// `ws` carries the session (it took it now, or earlier).
async fn take_over(env: &AppEnv<'_>, id: &ConnectionId, ws: &ConnectionId) -> Result<bool> {
    let pusher = &env.app.pusher;
    let took = env
        .app
        .store
        .connections
        .update_one(
            doc! { "_id": id.as_str(), "ws_id": { "$exists": false } },
            doc! { "$set": { "ws_id": ws.as_str() }, "$unset": { "poll_until": "" } },
        )
        .await?;
    if took.modified_count == 1 {
        pusher.hand_over(id, ws).await.map_err(Error::Push)?;
        pusher.enqueue(id, NOOP.into()).await.map_err(Error::Push)?;
        return Ok(true);
    }
    Ok(connections::get(env.app, id)
        .await?
        .is_some_and(|d| d.ws_id.as_deref() == Some(ws.as_str())))
}

/// A WebSocket connection that probed or carried a polling session went away: if it
/// carried it, the session ends with it. Returns whether it was one.
pub async fn ws_disconnect(env: &AppEnv<'_>, ws: &ConnectionId) -> Result<bool> {
    let Some(up) = env
        .app
        .store
        .poll_upgrades
        .find_one_and_delete(doc! { "_id": ws.as_str() })
        .await?
    else {
        return Ok(false);
    };
    let Ok(id) = ConnectionId::parse(&up.conn) else {
        return Ok(true);
    };
    let carried = connections::get(env.app, &id)
        .await?
        .is_some_and(|d| d.ws_id.as_deref() == Some(ws.as_str()));
    if carried {
        connections::remove(env.app, &id).await?;
    }
    Ok(true)
}
