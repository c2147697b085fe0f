//! An Engine.IO v4 / Socket.IO v5 server for stateless functions behind an API Gateway
//! WebSocket API: no process holds a socket, so every piece of session state (the Engine.IO
//! session, joined namespaces, a binary packet waiting for its attachments) is stored between
//! invocations, and every frame is one stateless invocation.
//!
//! It knows nothing of the chat, of `App`, BSON or the plain-JSON protocol. It reaches the
//! world through one trait, [`Env`]: session storage, the outbox (frames to a connection) and
//! deferred work (the open packet, posted once the connection exists). The chat implements
//! it on MongoDB, @connections and Lambda invoke (`realtime::sio_env`); [`super::memory`]
//! implements it in memory, so the whole protocol runs in unit tests and fuzz targets.
//!
//! Two layers, each a trait an application implements:
//! - [`EngineApp`]: what to do with Engine.IO messages. The Engine.IO layer itself (the
//!   handshake check, the open packet, heartbeat, ping/pong, close, refusing garbage) is
//!   [`handshake`], [`open`], [`heartbeat`] and [`frame`].
//! - [`SocketApp`]: namespaces, CONNECT authorization, and events. [`SocketIo`] adapts a
//!   `SocketApp` into an `EngineApp`, handling CONNECT/DISCONNECT, acks, binary attachments
//!   (where the transport can carry them) and protocol errors.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

pub use engineioxide_core::Sid;

use super::codec::{self, ClientPacket, Decoded, EnginePacket, ProtocolError};
use crate::domain::ConnectionId;

/// One WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

impl Frame {
    /// The frame as text: a binary frame's bytes when they are UTF-8, else empty.
    pub fn into_text(self) -> String {
        match self {
            Frame::Text(t) => t,
            Frame::Binary(b) => String::from_utf8(b).unwrap_or_default(),
        }
    }
}

/// A namespace a connection joined, with its socket id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub ns: String,
    pub sid: String,
}

/// A binary packet whose attachments are still arriving (one frame each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    pub header: String,
    pub expected: usize,
    pub attachments: Vec<Vec<u8>>,
}

/// What the runtime keeps about a connection between invocations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionState {
    /// Engine.IO session id (open packet).
    pub eio_sid: Sid,
    /// Whether the Socket.IO layer runs on it (else bare Engine.IO).
    pub socket_io: bool,
    pub namespaces: Vec<Joined>,
    /// Who the application said the client is at CONNECT (e.g. a user id).
    pub principal: Option<String>,
    pub partial: Option<Partial>,
    /// Whether the open packet went out.
    pub opened: bool,
    /// Whether a CONNECT ever succeeded (the connect timeout only applies before).
    pub joined_once: bool,
    pub connected_at_ms: i64,
    pub last_seen_ms: i64,
    pub last_ping_ms: Option<i64>,
    /// On the long-polling transport now: its pending `GET` pings it, not the heartbeat.
    pub long_polling: bool,
}

impl SessionState {
    pub fn joined(&self, ns: &str) -> bool {
        self.namespaces.iter().any(|j| j.ns == ns)
    }
}

/// Why a frame could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection does not exist (yet, or any more).
    #[error("connection is gone")]
    Gone,
    #[error("send failed: {0}")]
    Failed(String),
}

/// Engine.IO settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub max_payload: u64,
    /// A Socket.IO connection that has not joined a namespace by then is closed.
    pub connect_timeout: Duration,
    /// How long to retry the first frame while the connection does not exist yet.
    pub establish_wait: Duration,
}

/// The world the runtime talks to.
pub trait Env: Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Records a new connection (at the handshake).
    fn create(
        &self,
        id: &ConnectionId,
        eio_sid: Sid,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Marks the open packet as sent, once: the state when this call claimed it, `None`
    /// when the connection is unknown or was opened already (a retried task).
    fn claim_open(
        &self,
        id: &ConnectionId,
    ) -> impl Future<Output = Result<Option<SessionState>, Self::Error>> + Send;
    /// Joins a namespace (replacing an earlier join of it); `false` if the connection is gone.
    fn join(
        &self,
        id: &ConnectionId,
        joined: &Joined,
        principal: Option<&str>,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
    fn leave(
        &self,
        id: &ConnectionId,
        ns: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Forgets the connection's state.
    fn forget(&self, id: &ConnectionId) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// A sign of life (pong).
    fn touch(&self, id: &ConnectionId) -> impl Future<Output = Result<(), Self::Error>> + Send;
    fn set_partial(
        &self,
        id: &ConnectionId,
        partial: Option<&Partial>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// The next id for a server emit that expects an ack (1, 2, … per connection).
    fn next_ack_id(
        &self,
        id: &ConnectionId,
    ) -> impl Future<Output = Result<i64, Self::Error>> + Send;
    /// Every Engine.IO connection, for the heartbeat.
    fn engine_sessions(
        &self,
    ) -> impl Future<Output = Result<Vec<(ConnectionId, SessionState)>, Self::Error>> + Send;
    fn pinged(
        &self,
        ids: &[ConnectionId],
        at_ms: i64,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Sends one text frame.
    fn send(
        &self,
        id: &ConnectionId,
        frame: String,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
    fn send_binary(
        &self,
        id: &ConnectionId,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
    /// Closes the connection from the server side.
    fn close(&self, id: &ConnectionId) -> impl Future<Output = Result<(), SendError>> + Send;
    /// Has [`open`] run for this connection once it exists (the handshake cannot send).
    fn open_later(&self, id: &ConnectionId)
    -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Milliseconds since the epoch.
    fn now_ms(&self) -> i64;
}

/// What the handshake answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    Accepted,
    /// Refused with an HTTP status and a message.
    Refused(u16, &'static str),
}

/// The handshake of an Engine.IO client: `EIO=4` and the websocket transport, or it is
/// refused (400). The open packet cannot be sent from here (the connection does not exist
/// until the handshake returns), so it is deferred to [`open`].
pub async fn handshake<E: Env>(
    env: &E,
    id: &ConnectionId,
    eio: Option<&str>,
    transport: Option<&str>,
) -> Result<Handshake, E::Error> {
    if eio != Some("4") {
        return Ok(Handshake::Refused(
            400,
            "only Engine.IO protocol 4 (EIO=4: Socket.IO v3/v4 clients) is supported",
        ));
    }
    if transport != Some("websocket") {
        return Ok(Handshake::Refused(400, "use transports: [\"websocket\"]"));
    }
    env.create(id, Sid::new()).await?;
    env.open_later(id).await?;
    Ok(Handshake::Accepted)
}

/// What became of a first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstFrame {
    Sent,
    /// The connection never became reachable (it went away before it was established).
    NeverEstablished,
    /// Sending failed otherwise; the frame may or may not have reached the client.
    Failed(SendError),
}

/// Sends `frame`, retrying while the connection does not exist yet (just after the
/// handshake).
pub async fn send_when_established<E: Env>(
    env: &E,
    id: &ConnectionId,
    frame: String,
    wait: Duration,
) -> FirstFrame {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match env.send(id, frame.clone()).await {
            Ok(()) => return FirstFrame::Sent,
            Err(SendError::Gone) if started.elapsed() < wait => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(SendError::Gone) => {
                tracing::info!(connection = %id, "connection never became reachable");
                return FirstFrame::NeverEstablished;
            }
            Err(e) => return FirstFrame::Failed(e),
        }
    }
}

/// Sends the open packet, once (safe to run twice). Returns whether this call sent it.
pub async fn open<E: Env>(
    env: &E,
    cfg: &EngineConfig,
    id: &ConnectionId,
) -> Result<bool, E::Error> {
    let Some(state) = env.claim_open(id).await? else {
        return Ok(false);
    };
    let packet = codec::open_packet(
        state.eio_sid,
        cfg.ping_interval,
        cfg.ping_timeout,
        cfg.max_payload,
    );
    match send_when_established(env, id, packet, cfg.establish_wait).await {
        FirstFrame::Sent => Ok(true),
        FirstFrame::NeverEstablished => {
            env.forget(id).await?;
            Ok(false)
        }
        // The packet may have arrived (a timeout after delivery): keep the session; a
        // client that got nothing gives up and its `$disconnect` forgets it.
        FirstFrame::Failed(e) => {
            tracing::warn!(error = %e, connection = %id, "the open packet may not have arrived");
            Ok(false)
        }
    }
}

/// What one heartbeat did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    pub pinged: usize,
    pub dropped: usize,
}

/// Pings in flight at once in one heartbeat (a sweep shard may ping thousands).
const PINGS_AT_ONCE: usize = 64;

/// The server's heartbeat: pings every open connection once per interval (once it answered
/// the last ping), closes the ones that left a ping unanswered for the ping timeout (a
/// long-polling one: silent for interval + timeout), the ones that never got their open
/// packet, and Socket.IO ones that never joined a namespace within the connect timeout.
pub async fn heartbeat<E: Env>(env: &E, cfg: &EngineConfig) -> Result<Beat, E::Error> {
    let now = env.now_ms();
    let silent_limit = (cfg.ping_interval + cfg.ping_timeout).as_millis() as i64;
    let interval = cfg.ping_interval.as_millis() as i64;
    // A pong is recorded with the clock of the instance that took it, a ping with the
    // sweep's: a pong up to this much "before" its ping still answers it.
    let slack = (interval / 4).min(1000);
    let mut drop = Vec::new();
    let mut ping = Vec::new();
    for (id, s) in env.engine_sessions().await? {
        if !s.opened {
            // The open task owns a connection until the open packet went out.
            if now - s.connected_at_ms > (cfg.establish_wait.as_millis() as i64) * 2 {
                drop.push((id, "its open packet never went out"));
            }
            continue;
        }
        // Engine.IO's rule: a ping unanswered for `pingTimeout` ends the session. Silence
        // alone does not: a server slow to ping (a sweep delayed under load) must not drop
        // the clients it failed to ping; a client left without pings for `pingInterval +
        // pingTimeout` gives up by itself, as stock clients do. A long-polling session is
        // pinged by its own pending `GET`, so it is silent when it stops polling.
        let awaiting = s.last_ping_ms.is_some_and(|p| s.last_seen_ms + slack < p);
        let silent = if s.long_polling {
            now - s.last_seen_ms > silent_limit
        } else {
            awaiting
                && s.last_ping_ms
                    .is_some_and(|p| now - p > cfg.ping_timeout.as_millis() as i64)
        };
        let never_connected = s.socket_io
            && !s.joined_once
            && now - s.connected_at_ms > cfg.connect_timeout.as_millis() as i64;
        if silent || never_connected {
            let why = if silent {
                "silent"
            } else {
                "never sent CONNECT"
            };
            drop.push((id, why));
        } else if !s.long_polling && !awaiting && s.last_ping_ms.is_none_or(|p| now - p >= interval)
        {
            ping.push(id);
        }
    }
    let mut pinged: Vec<ConnectionId> = Vec::with_capacity(ping.len());
    for chunk in ping.chunks(PINGS_AT_ONCE) {
        let sent = futures::future::join_all(chunk.iter().map(|id| async move {
            match env.send(id, codec::ping()).await {
                Ok(()) => Some(id.clone()),
                Err(SendError::Gone) => {
                    let _ = env.forget(id).await;
                    None
                }
                Err(e) => {
                    tracing::warn!(connection = %id, error = %e, "could not ping; the next sweep tries again");
                    None
                }
            }
        }))
        .await;
        pinged.extend(sent.into_iter().flatten());
    }
    if !pinged.is_empty() {
        env.pinged(&pinged, now).await?;
    }
    for (id, why) in &drop {
        tracing::info!(connection = %id, why, "dropping a connection");
        let _ = env.close(id).await;
        env.forget(id).await?;
    }
    Ok(Beat {
        pinged: pinged.len(),
        dropped: drop.len(),
    })
}

/// What an application does with Engine.IO messages.
pub trait EngineApp<E: Env>: Sync {
    fn message(
        &self,
        env: &E,
        state: &SessionState,
        id: &ConnectionId,
        data: Frame,
    ) -> impl Future<Output = Result<(), E::Error>> + Send;
}

/// One frame from an Engine.IO client whose stored state is `state`.
pub async fn frame<E: Env, A: EngineApp<E>>(
    env: &E,
    app: &A,
    id: &ConnectionId,
    state: &SessionState,
    frame: Frame,
) -> Result<(), E::Error> {
    let text = match frame {
        Frame::Binary(bytes) => return app.message(env, state, id, Frame::Binary(bytes)).await,
        Frame::Text(text) => text,
    };
    let packet = match codec::decode_engine(&text) {
        Ok(p) => p,
        Err(e) => return protocol_close(env, id, e).await,
    };
    // Engine.IO v4: the server pings and the client answers; a client's `2probe` (the
    // upgrade probe) is answered with `3probe`, a bare `2` with `3`.
    match packet {
        EnginePacket::Pong | EnginePacket::PongUpgrade => env.touch(id).await,
        EnginePacket::Ping | EnginePacket::PingUpgrade => {
            let reply = match packet {
                EnginePacket::PingUpgrade => EnginePacket::PongUpgrade,
                _ => EnginePacket::Pong,
            };
            let _ = env.send(id, String::from(reply)).await;
            Ok(())
        }
        EnginePacket::Close => close(env, id).await,
        EnginePacket::Message(payload) => {
            app.message(env, state, id, Frame::Text(payload.as_str().to_owned()))
                .await
        }
        _ => Ok(()),
    }
}

/// Ends a connection from the server side.
pub async fn close<E: Env>(env: &E, id: &ConnectionId) -> Result<(), E::Error> {
    env.forget(id).await?;
    let _ = env.close(id).await;
    Ok(())
}

/// A frame that breaks the protocol closes the connection, as the reference server does.
pub async fn protocol_close<E: Env>(
    env: &E,
    id: &ConnectionId,
    why: ProtocolError,
) -> Result<(), E::Error> {
    tracing::info!(error = %why, "protocol error; closing the connection");
    close(env, id).await
}

/// How a Socket.IO application answers a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorized {
    /// Join as this principal (e.g. a user id).
    Principal(String),
    /// Join as this principal, in the recoverable session `pid` (connection state
    /// recovery: the CONNECT answer carries it; the same `pid` as the client sent means
    /// its session was recovered).
    Recoverable { principal: String, pid: String },
    /// Join without a principal.
    Anonymous,
    /// `CONNECT_ERROR` with this message.
    Refused(String),
}

/// The connection an event came from.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: ConnectionId,
    pub principal: Option<String>,
    /// The recoverable session the CONNECT answer named (only at `connected`).
    pub pid: Option<String>,
}

/// A Socket.IO event from a client.
#[derive(Debug, Clone)]
pub struct Event {
    pub ns: String,
    pub name: String,
    pub args: Vec<Value>,
    pub ack: Option<i64>,
    pub attachments: Vec<Bytes>,
}

/// A client's acknowledgement of a server emit.
#[derive(Debug, Clone)]
pub struct Ack {
    pub ns: String,
    pub id: i64,
    pub args: Vec<Value>,
    pub attachments: Vec<Bytes>,
}

/// A Socket.IO application.
pub trait SocketApp<E: Env>: Sync {
    /// Whether the namespace exists (else CONNECT gets `Invalid namespace`).
    fn has_namespace(&self, ns: &str) -> bool;
    /// Whether binary attachments are accepted (API Gateway cannot carry them).
    fn accepts_binary(&self) -> bool {
        false
    }
    /// Whether a session, once joined, is the connection's for good: leaving a namespace or
    /// a second CONNECT to a joined one closes the connection instead. A settled session
    /// then never changes while the connection lives, so a warm instance may cache it (and
    /// several instances cannot disagree about it).
    fn sessions_are_final(&self) -> bool {
        false
    }
    /// Decides a CONNECT to `ns` on connection `id` from its auth payload.
    fn authorize(
        &self,
        env: &E,
        id: &ConnectionId,
        ns: &str,
        auth: Option<&Value>,
    ) -> impl Future<Output = Result<Authorized, E::Error>> + Send;
    /// After the CONNECT answer went out.
    fn connected(
        &self,
        env: &E,
        session: &Session,
        ns: &str,
        auth: Option<Value>,
    ) -> impl Future<Output = Result<(), E::Error>> + Send;
    fn event(
        &self,
        env: &E,
        session: &Session,
        event: Event,
    ) -> impl Future<Output = Result<(), E::Error>> + Send;
    /// A client's ack of a server emit that asked for one (ignored unless overridden).
    fn ack(
        &self,
        _env: &E,
        _session: &Session,
        _ack: Ack,
    ) -> impl Future<Output = Result<(), E::Error>> + Send {
        async { Ok(()) }
    }
}

/// A [`SocketApp`] served over Engine.IO.
#[derive(Debug)]
pub struct SocketIo<'a, A>(pub &'a A);

impl<E: Env, A: SocketApp<E>> EngineApp<E> for SocketIo<'_, A> {
    async fn message(
        &self,
        env: &E,
        state: &SessionState,
        id: &ConnectionId,
        data: Frame,
    ) -> Result<(), E::Error> {
        match data {
            Frame::Text(payload) => {
                if state.partial.is_some() {
                    return protocol_close(
                        env,
                        id,
                        ProtocolError::Malformed(
                            "a packet arrived before the previous one's attachments".into(),
                        ),
                    )
                    .await;
                }
                match codec::decode(&payload) {
                    Err(e) => protocol_close(env, id, e).await,
                    Ok(Decoded::AwaitingAttachments { expected }) => {
                        if !self.0.accepts_binary() {
                            return protocol_close(env, id, ProtocolError::BinaryUnsupported).await;
                        }
                        let partial = Partial {
                            header: payload,
                            expected,
                            attachments: Vec::new(),
                        };
                        env.set_partial(id, Some(&partial)).await
                    }
                    Ok(Decoded::Packet(packet)) => {
                        Box::pin(self.packet(env, state, id, packet)).await
                    }
                }
            }
            Frame::Binary(bytes) => {
                let Some(mut partial) = state.partial.clone() else {
                    return protocol_close(env, id, ProtocolError::UnexpectedBinary).await;
                };
                partial.attachments.push(bytes);
                if partial.attachments.len() < partial.expected {
                    return env.set_partial(id, Some(&partial)).await;
                }
                env.set_partial(id, None).await?;
                match codec::decode_with_attachments(&partial.header, &partial.attachments) {
                    Ok(packet) => Box::pin(self.packet(env, state, id, packet)).await,
                    Err(e) => protocol_close(env, id, e).await,
                }
            }
        }
    }
}

impl<A> SocketIo<'_, A> {
    async fn packet<E: Env>(
        &self,
        env: &E,
        state: &SessionState,
        id: &ConnectionId,
        packet: ClientPacket,
    ) -> Result<(), E::Error>
    where
        A: SocketApp<E>,
    {
        let app = self.0;
        match packet {
            ClientPacket::Connect { ns, auth } => {
                if app.sessions_are_final() && state.joined(&ns) {
                    return protocol_close(
                        env,
                        id,
                        ProtocolError::Malformed(format!("a second CONNECT to {ns}")),
                    )
                    .await;
                }
                if !app.has_namespace(&ns) {
                    let _ = env
                        .send(id, codec::connect_error(&ns, "Invalid namespace"))
                        .await;
                    return Ok(());
                }
                let (principal, pid) = match app.authorize(env, id, &ns, auth.as_ref()).await? {
                    Authorized::Refused(message) => {
                        let _ = env.send(id, codec::connect_error(&ns, &message)).await;
                        return Ok(());
                    }
                    Authorized::Principal(p) => (Some(p), None),
                    Authorized::Recoverable { principal, pid } => (Some(principal), Some(pid)),
                    Authorized::Anonymous => (None, None),
                };
                let joined = Joined {
                    ns: ns.clone(),
                    sid: Sid::new().to_string(),
                };
                if !env.join(id, &joined, principal.as_deref()).await? {
                    return Ok(());
                }
                if env
                    .send(id, codec::connect_ok(&ns, &joined.sid, pid.as_deref()))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                let session = Session {
                    id: id.clone(),
                    principal: principal.or_else(|| state.principal.clone()),
                    pid,
                };
                Box::pin(app.connected(env, &session, &ns, auth)).await
            }
            ClientPacket::Disconnect { ns } if app.sessions_are_final() => {
                tracing::info!(ns, "client left; closing its connection");
                close(env, id).await
            }
            // The Engine.IO session outlives its namespaces, as with the reference server:
            // pings go on and the client may CONNECT again.
            ClientPacket::Disconnect { ns } => env.leave(id, &ns).await,
            ClientPacket::Ack {
                ns,
                id: ack_id,
                args,
                attachments,
            } => {
                if !state.joined(&ns) {
                    return Ok(());
                }
                let session = Session {
                    id: id.clone(),
                    principal: state.principal.clone(),
                    pid: None,
                };
                let ack = Ack {
                    ns,
                    id: ack_id,
                    args,
                    attachments,
                };
                Box::pin(app.ack(env, &session, ack)).await
            }
            ClientPacket::Event {
                ns,
                name,
                args,
                ack,
                attachments,
            } => {
                if !state.joined(&ns) {
                    return protocol_close(
                        env,
                        id,
                        ProtocolError::Malformed(format!("event on namespace {ns} before CONNECT")),
                    )
                    .await;
                }
                let session = Session {
                    id: id.clone(),
                    principal: state.principal.clone(),
                    pid: None,
                };
                let event = Event {
                    ns,
                    name,
                    args,
                    ack,
                    attachments,
                };
                Box::pin(app.event(env, &session, event)).await
            }
        }
    }
}

/// Sends a text frame then its binary attachments, in order.
pub async fn send_with_attachments<E: Env>(
    env: &E,
    id: &ConnectionId,
    text: String,
    attachments: Vec<Bytes>,
) {
    if env.send(id, text).await.is_err() {
        return;
    }
    for bin in attachments {
        if env.send_binary(id, bin.to_vec()).await.is_err() {
            break;
        }
    }
}

/// The Engine.IO v4 payload record separator: a long-polling request or response carries
/// several packets, one per record.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// The packets of a long-polling payload (a `POST` body): text packets as they are, binary
/// ones (`b` + base64) decoded. Every text packet must be a valid Engine.IO packet.
pub fn decode_payload(body: &str) -> Result<Vec<Frame>, ProtocolError> {
    use base64::Engine as _;
    body.split(RECORD_SEPARATOR)
        .map(|packet| match packet.strip_prefix('b') {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(Frame::Binary)
                .map_err(|e| ProtocolError::Malformed(format!("binary packet: {e}"))),
            None => codec::decode_engine(packet).map(|_| Frame::Text(packet.to_owned())),
        })
        .collect()
}

/// A long-polling payload (a `GET` answer) of packets already in the payload encoding.
pub fn encode_payload(packets: &[String]) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.push_str(p);
    }
    out
}
