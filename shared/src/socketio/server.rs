//! An Engine.IO v4 / Socket.IO v5 server that lives in Lambda functions behind an API
//! Gateway WebSocket API: no process holds a socket, so every piece of session state (the
//! Engine.IO session, joined namespaces, a binary packet waiting for its attachments) is in
//! the connection's record, and every frame is one stateless invocation.
//!
//! Two layers, each a trait an application implements:
//! - [`EngineApp`]: what to do with Engine.IO messages. The Engine.IO layer itself (`$connect`
//!   validation, the open packet via the scheduler, ping/pong, close, refusing garbage) is
//!   [`connect`] and [`frame`].
//! - [`SocketApp`]: namespaces, CONNECT authorization, and events. [`SocketIo`] adapts a
//!   `SocketApp` into an `EngineApp`, handling CONNECT/DISCONNECT, acks, binary
//!   attachments (where the transport can carry them) and protocol errors.
//!
//! The chat (`realtime::ws`) and the protocol conformance server are two such applications.

use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use bson::doc;
use bytes::Bytes;
use serde_json::Value;

use super::codec::{self, ClientPacket, Decoded, EnginePacket, ProtocolError};
use crate::app::App;
use crate::domain::{ConnectionId, UserId, random_sid};
use crate::error::Result;
use crate::realtime::connections;
use crate::realtime::fanout;
use crate::scheduler::Task;
use crate::store::{ConnectionDoc, PartialPacket, Protocol};
pub use crate::ws_event::Frame;
use crate::ws_event::{ok, response};

/// `$connect` of an Engine.IO client: `EIO=4` and the websocket transport, or the handshake
/// is refused (400). The open packet cannot be posted from here (the connection does not
/// exist until `$connect` returns), so the scheduler is asked to post it.
pub async fn connect(
    app: &App,
    id: &ConnectionId,
    event: &ApiGatewayWebsocketProxyRequest,
    protocol: Protocol,
) -> Result<ApiGatewayProxyResponse> {
    let query = &event.query_string_parameters;
    if query.first("EIO") != Some("4") {
        return Ok(response(
            400,
            Some("only Engine.IO protocol 4 (EIO=4: Socket.IO v3/v4 clients) is supported"),
        ));
    }
    if query.first("transport") != Some("websocket") {
        return Ok(response(400, Some("use transports: [\"websocket\"]")));
    }
    connections::register(app, id, protocol, None, Some(random_sid())).await?;
    app.invoker
        .invoke_async(&Task::Open {
            connection_id: id.clone(),
        })
        .await?;
    Ok(ok())
}

/// What an application does with Engine.IO messages.
pub trait EngineApp: Sync {
    fn message(
        &self,
        app: &App,
        conn: &ConnectionDoc,
        id: &ConnectionId,
        data: Frame,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// One frame from an Engine.IO client.
pub async fn frame<A: EngineApp>(
    app: &App,
    engine: &A,
    id: &ConnectionId,
    conn: &ConnectionDoc,
    frame: Frame,
) -> Result<()> {
    let text = match frame {
        Frame::Binary(bytes) => return engine.message(app, conn, id, Frame::Binary(bytes)).await,
        Frame::Text(text) => text,
    };
    let packet = match EnginePacket::decode(&text) {
        Ok(p) => p,
        Err(e) => return protocol_close(app, id, conn, e).await,
    };
    match packet {
        EnginePacket::Pong(_) => connections::touch(app, id).await,
        EnginePacket::Ping(data) => {
            let _ = fanout::post_frame(app, id, format!("3{data}")).await;
            Ok(())
        }
        EnginePacket::Close => close(app, id).await,
        EnginePacket::Upgrade | EnginePacket::Noop => Ok(()),
        EnginePacket::Message(payload) => engine.message(app, conn, id, Frame::Text(payload)).await,
    }
}

/// Ends a connection from the server side.
pub async fn close(app: &App, id: &ConnectionId) -> Result<()> {
    connections::remove(app, id).await?;
    let _ = app.pusher.close(id).await;
    Ok(())
}

/// A frame that breaks the protocol closes the connection, as the reference server does.
pub async fn protocol_close(
    app: &App,
    id: &ConnectionId,
    conn: &ConnectionDoc,
    why: ProtocolError,
) -> Result<()> {
    tracing::info!(error = %why, protocol = ?conn.protocol, "protocol error; closing the connection");
    close(app, id).await
}

/// How a Socket.IO application answers a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorized {
    /// Join, bound to this user.
    User(UserId),
    /// Join without a user.
    Anonymous,
    /// `CONNECT_ERROR` with this message.
    Refused(String),
}

/// The connection an event came from.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: ConnectionId,
    pub user: Option<UserId>,
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
pub trait SocketApp: Sync {
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
    fn authorize(
        &self,
        app: &App,
        ns: &str,
        auth: Option<&Value>,
    ) -> impl Future<Output = Result<Authorized>> + Send;
    /// After the CONNECT answer went out.
    fn connected(
        &self,
        app: &App,
        session: &Session,
        ns: &str,
        auth: Option<Value>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn event(
        &self,
        app: &App,
        session: &Session,
        event: Event,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A client's ack of a server emit that asked for one (ignored unless overridden).
    fn ack(
        &self,
        _app: &App,
        _session: &Session,
        _ack: Ack,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

/// A [`SocketApp`] served over Engine.IO.
#[derive(Debug)]
pub struct SocketIo<'a, A>(pub &'a A);

impl<A: SocketApp> EngineApp for SocketIo<'_, A> {
    async fn message(
        &self,
        app: &App,
        conn: &ConnectionDoc,
        id: &ConnectionId,
        data: Frame,
    ) -> Result<()> {
        match data {
            Frame::Text(payload) => {
                if conn.partial.is_some() {
                    return protocol_close(
                        app,
                        id,
                        conn,
                        ProtocolError::Malformed(
                            "a packet arrived before the previous one's attachments".into(),
                        ),
                    )
                    .await;
                }
                match codec::decode(&payload) {
                    Err(e) => protocol_close(app, id, conn, e).await,
                    Ok(Decoded::AwaitingAttachments { expected }) => {
                        if !self.0.accepts_binary() {
                            return protocol_close(app, id, conn, ProtocolError::BinaryUnsupported)
                                .await;
                        }
                        let partial = PartialPacket {
                            header: payload,
                            expected: expected as i64,
                            attachments: Vec::new(),
                        };
                        connections::set_partial(app, id, Some(&partial)).await
                    }
                    Ok(Decoded::Packet(packet)) => {
                        Box::pin(self.packet(app, conn, id, packet)).await
                    }
                }
            }
            Frame::Binary(bytes) => {
                let Some(mut partial) = conn.partial.clone() else {
                    return protocol_close(app, id, conn, ProtocolError::UnexpectedBinary).await;
                };
                partial.attachments.push(bson::Binary {
                    subtype: bson::spec::BinarySubtype::Generic,
                    bytes,
                });
                if (partial.attachments.len() as i64) < partial.expected {
                    return connections::set_partial(app, id, Some(&partial)).await;
                }
                connections::set_partial(app, id, None).await?;
                let bins: Vec<Vec<u8>> = partial.attachments.into_iter().map(|b| b.bytes).collect();
                match codec::decode_with_attachments(&partial.header, &bins) {
                    Ok(packet) => Box::pin(self.packet(app, conn, id, packet)).await,
                    Err(e) => protocol_close(app, id, conn, e).await,
                }
            }
        }
    }
}

impl<A: SocketApp> SocketIo<'_, A> {
    async fn packet(
        &self,
        app: &App,
        conn: &ConnectionDoc,
        id: &ConnectionId,
        packet: ClientPacket,
    ) -> Result<()> {
        match packet {
            ClientPacket::Connect { ns, auth } => {
                if self.0.sessions_are_final() && conn.joined(&ns) {
                    return protocol_close(
                        app,
                        id,
                        conn,
                        ProtocolError::Malformed(format!("a second CONNECT to {ns}")),
                    )
                    .await;
                }
                if !self.0.has_namespace(&ns) {
                    let _ =
                        fanout::post_frame(app, id, codec::connect_error(&ns, "Invalid namespace"))
                            .await;
                    return Ok(());
                }
                let user = match self.0.authorize(app, &ns, auth.as_ref()).await? {
                    Authorized::Refused(message) => {
                        let _ =
                            fanout::post_frame(app, id, codec::connect_error(&ns, &message)).await;
                        return Ok(());
                    }
                    Authorized::User(u) => Some(u),
                    Authorized::Anonymous => None,
                };
                let sid = random_sid();
                if !connections::join(app, id, user, &ns, &sid).await? {
                    return Ok(());
                }
                if fanout::post_frame(app, id, codec::connect_ok(&ns, &sid))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                let session = Session {
                    id: id.clone(),
                    user: user.or_else(|| conn.user()),
                };
                Box::pin(self.0.connected(app, &session, &ns, auth)).await
            }
            // The Engine.IO session outlives its namespaces, as with the reference server:
            // pings go on and the client may CONNECT again.
            ClientPacket::Disconnect { ns } if self.0.sessions_are_final() => {
                tracing::info!(ns, "client left; closing its connection");
                close(app, id).await
            }
            ClientPacket::Disconnect { ns } => connections::leave(app, id, &ns).await,
            ClientPacket::Ack {
                ns,
                id: ack_id,
                args,
                attachments,
            } => {
                if !conn.joined(&ns) {
                    return Ok(());
                }
                let session = Session {
                    id: id.clone(),
                    user: conn.user(),
                };
                let ack = Ack {
                    ns,
                    id: ack_id,
                    args,
                    attachments,
                };
                Box::pin(self.0.ack(app, &session, ack)).await
            }
            ClientPacket::Event {
                ns,
                name,
                args,
                ack,
                attachments,
            } => {
                if !conn.joined(&ns) {
                    return protocol_close(
                        app,
                        id,
                        conn,
                        ProtocolError::Malformed(format!("event on namespace {ns} before CONNECT")),
                    )
                    .await;
                }
                let session = Session {
                    id: id.clone(),
                    user: conn.user(),
                };
                let event = Event {
                    ns,
                    name,
                    args,
                    ack,
                    attachments,
                };
                Box::pin(self.0.event(app, &session, event)).await
            }
        }
    }
}

/// Posts a text frame then its binary attachments, in order.
pub async fn post_with_attachments(
    app: &App,
    id: &ConnectionId,
    text: String,
    attachments: Vec<Bytes>,
) -> Result<()> {
    if fanout::post_frame(app, id, text).await.is_err() {
        return Ok(());
    }
    for bin in attachments {
        if app.pusher.post_binary(id, bin.to_vec()).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Forgets an unfinished binary packet (used by `connections::set_partial`).
pub(crate) fn partial_update(partial: Option<&PartialPacket>) -> bson::Document {
    match partial.and_then(|p| bson::to_bson(p).ok()) {
        Some(p) => doc! { "$set": { "partial": p } },
        None => doc! { "$unset": { "partial": "" } },
    }
}
