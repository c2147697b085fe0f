//! The WebSocket routes: `$connect`, `$disconnect`, `$default` (the Engine.IO/Socket.IO
//! framing shim) and the plain-JSON action routes (`send_message`, `typing`, `read`).
//!
//! Each takes the API Gateway WebSocket event and returns the integration response API
//! Gateway expects (only `$connect`'s status matters: non-2xx refuses the handshake).
//! Replies never travel in that response: they are pushed through @connections, framed for
//! the connection's protocol.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use serde_json::Value;
use tracing::Instrument;

use crate::app::App;
use crate::auth;
use crate::domain::{ConnectionId, Token, UserId};
use crate::error::{AuthError, Error, InputError, Result};
use crate::realtime::events::{self, ServerEvent};
use crate::realtime::service::{self, Caller, ClientEvent};
use crate::realtime::sio_env::{AppEnv, state_of};
use crate::realtime::{connections, fanout, outbox, polling, recovery};
use crate::socketio;
use crate::socketio::runtime::{
    self, Authorized, Event, Frame, Handshake, Session, SocketApp, SocketIo,
};
use crate::store::{ConnectionDoc, Protocol};
use crate::task::Task;
use crate::ws_event::{body_text, connection_id, frame_of, ok, response, span};

/// The plain-JSON routes API Gateway selects with `$request.body.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SendMessage,
    Typing,
    Read,
}

impl Action {
    pub fn route_key(self) -> &'static str {
        match self {
            Action::SendMessage => "send_message",
            Action::Typing => "typing",
            Action::Read => "read",
        }
    }
}

/// `$connect`: Socket.IO clients (`?EIO=4&transport=websocket`) are recorded and the
/// scheduler is asked to post the Engine.IO open packet once the connection exists;
/// plain-JSON clients must bring a valid `?token=` or are refused with 401.
pub async fn on_connect(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse> {
    let span = span(&event);
    async {
        let id = connection_id(&event)?;
        // Browsers send `Origin`: it must be one the APIs allow (as the HTTP API's CORS);
        // clients without one (mobile apps, servers) are not browsers and pass.
        let origin = event.headers.get("origin").and_then(|v| v.to_str().ok());
        if origin.is_some_and(|o| !app.config.allowed_origins.allows(o)) {
            tracing::info!("handshake from an origin that is not allowed");
            return Ok(response(403, Some("Forbidden")));
        }
        let query = &event.query_string_parameters;
        if query.first("EIO").is_some() {
            return socket_io_handshake(&AppEnv::new(app), &id, &event).await;
        }
        let session = match query.first("token").map(Token::parse) {
            Some(Ok(token)) => match auth::authenticate_session(app, &token).await {
                Ok(session) => session,
                Err(Error::Auth(_)) => return Ok(response(401, Some("Unauthorized"))),
                Err(e) => return Err(e),
            },
            _ => return Ok(response(401, Some("Unauthorized"))),
        };
        // `?resume=<pid>:<offset>`: the session of an earlier connection, if it can be
        // recovered; else a new one.
        let claim = query.first("resume").and_then(recovery::Claim::from_resume);
        let start = recovery::start(app, session.user, claim.as_ref()).await?;
        let pid = start.as_ref().map(|s| s.pid().to_owned());
        connections::register(app, &id, Protocol::Json, Some(&session), None, pid).await?;
        if over_connection_cap(app, session.user).await? {
            connections::remove(app, &id).await?;
            return Ok(response(429, Some("Too many connections")));
        }
        let resume_after = match start {
            Some(recovery::Start::Recovered { after, .. }) => Some(after),
            _ => None,
        };
        app.invoker
            .invoke_async(&Task::Welcome {
                connection_id: id.clone(),
                resume_after,
            })
            .await?;
        Ok(ok())
    }
    .instrument(span)
    .await
}

/// Whether `user`, counting a connection that has just been bound to them, has more
/// connections than one user may (`MAX_CONNECTIONS_PER_USER`); if so, that connection must
/// go. Counting after binding, never before, is what makes the cap hold under races: of
/// connections arriving together each sees all the others, so at worst all of them are
/// refused (the clients retry), never too many kept.
async fn over_connection_cap(app: &App, user: UserId) -> Result<bool> {
    Ok(connections::bound_count(app, user).await? > app.config.max_connections_per_user)
}

/// `$disconnect`: forgets the connection.
pub async fn on_disconnect(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse> {
    let span = span(&event);
    async {
        let id = connection_id(&event)?;
        // Only a connection without a record of its own can have probed or carried a
        // long-polling session.
        if !connections::remove(app, &id).await? {
            polling::ws_disconnect(&AppEnv::new(app), &id).await?;
        }
        Ok(ok())
    }
    .instrument(span)
    .await
}

/// `$default`: every Socket.IO frame (they are not JSON objects with an `action`), and
/// plain-JSON frames whose action has no route.
pub async fn on_default(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse> {
    let span = span(&event);
    async {
        let id = connection_id(&event)?;
        let frame = frame_of(&event);
        let conn = match connections::get_settled(app, &id).await {
            Ok(conn) => conn,
            Err(e) => {
                refuse_frame(app, &id, &frame, &e).await;
                return Err(e);
            }
        };
        let Some(conn) = conn else {
            // A connection that probes or carries a long-polling session (the upgrade).
            let env = AppEnv::new(app);
            if let Some(session) = polling::upgrade_of(&env, &id).await? {
                Box::pin(polling::ws_frame(
                    &env,
                    &SocketIo(&ChatSocket),
                    &id,
                    &session,
                    frame,
                ))
                .await?;
                return Ok(ok());
            }
            // No record: the connection is unknown to us (its session ended, it expired, or
            // it never registered).
            tracing::warn!("frame from an unknown connection; closing it");
            refuse_frame(app, &id, &frame, &Error::Auth(AuthError::Unauthorized)).await;
            let _ = app.pusher.close(&id).await;
            return Ok(ok());
        };
        if conn.session_expired(crate::time::now()) {
            refuse_frame(app, &id, &frame, &Error::Auth(AuthError::Unauthorized)).await;
            outbox::end_connection(app, &id, conn.protocol).await;
            return Ok(ok());
        }
        match conn.protocol {
            Protocol::SocketIo | Protocol::Engine => {
                let env = AppEnv::new(app);
                let state = state_of(&conn);
                Box::pin(runtime::frame(
                    &env,
                    &SocketIo(&ChatSocket),
                    &id,
                    &state,
                    frame,
                ))
                .await?;
            }
            Protocol::Json => {
                let text = frame.into_text();
                let action = serde_json::from_str::<Value>(&text)
                    .map(|v| v.get("action").and_then(Value::as_str).map(str::to_owned));
                let e: Error = match &action {
                    Ok(Some(action)) => {
                        crate::error::ChatError::UnknownEvent(action.clone()).into()
                    }
                    Ok(None) => {
                        InputError::InvalidBody("frames are JSON objects with an `action`".into())
                            .into()
                    }
                    Err(e) => InputError::MalformedJson(crate::error::json_problem(e)).into(),
                };
                let event = action.ok().flatten();
                let notice = ServerEvent::error(&e, event.as_deref()).frame(Protocol::Json);
                let _ = outbox::post_frame(app, &id, notice).await;
            }
        }
        Ok(ok())
    }
    .instrument(span)
    .await
}

/// A plain-JSON action route (`send_message`, `typing`, `read`).
pub async fn on_action(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
    action: Action,
) -> Result<ApiGatewayProxyResponse> {
    let span = span(&event);
    async {
        let id = connection_id(&event)?;
        let conn = match connections::get_settled(app, &id).await {
            Ok(conn) => conn,
            Err(e) => {
                let notice = ServerEvent::error(&e, Some(action.route_key())).frame(Protocol::Json);
                let _ = outbox::post_frame(app, &id, notice).await;
                return Err(e);
            }
        };
        let expired = conn
            .as_ref()
            .is_some_and(|c| c.session_expired(crate::time::now()));
        let user = conn
            .as_ref()
            .and_then(ConnectionDoc::user)
            .filter(|_| !expired);
        let Some(user) = user else {
            let e = Error::Auth(AuthError::Unauthorized);
            let _ = outbox::post_frame(
                app,
                &id,
                ServerEvent::error(&e, Some(action.route_key())).frame(Protocol::Json),
            )
            .await;
            if expired {
                let _ = app.pusher.close(&id).await;
                connections::remove(app, &id).await?;
            }
            return Ok(ok());
        };
        let protocol = conn.map_or(Protocol::Json, |c| c.protocol);
        let caller = Caller {
            connection: id.clone(),
            user,
            protocol,
        };
        let parsed: Result<ClientEvent> = serde_json::from_str::<Value>(&body_text(&event))
            .map_err(|e| InputError::MalformedJson(crate::error::json_problem(&e)).into())
            .and_then(|body| Ok(ClientEvent::parse(action.route_key(), Some(body))?));
        let result = match parsed {
            Ok(ev) => Box::pin(service::dispatch(app, &caller, ev)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(outcome) => {
                if let Some(reply) = outcome.reply {
                    let _ = outbox::post_frame(app, &id, reply.frame(protocol)).await;
                }
                if let Some(sent) = outcome.sent {
                    Box::pin(sent.fan_out(app)).await;
                }
            }
            Err(e) => {
                crate::http::log_error(&e);
                let _ = outbox::post_frame(
                    app,
                    &id,
                    ServerEvent::error(&e, Some(action.route_key())).frame(protocol),
                )
                .await;
                if e.is_internal() {
                    return Err(e);
                }
            }
        }
        Ok(ok())
    }
    .instrument(span)
    .await
}

/// Tells the client its frame could not be handled (the connection's record could not be
/// read, e.g. the database is unavailable): a Socket.IO event gets a `system` error and, if
/// it asked for one, an error ack; a plain-JSON action a `system` error. The client can
/// retry; nothing was done.
async fn refuse_frame(app: &App, id: &crate::domain::ConnectionId, frame: &Frame, e: &Error) {
    let Frame::Text(text) = frame else { return };
    let frames = if let Some(payload) = text.strip_prefix('4') {
        match socketio::decode(payload) {
            Ok(socketio::Decoded::Packet(socketio::ClientPacket::Event {
                ns, name, ack, ..
            })) => {
                let mut frames = vec![ServerEvent::error(e, Some(&name)).frame(Protocol::SocketIo)];
                if let Some(ack) = ack {
                    frames.push(socketio::ack(&ns, ack, &[events::ack_error(e)]));
                }
                frames
            }
            _ => Vec::new(),
        }
    } else if text.starts_with('{') {
        let action = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned));
        vec![ServerEvent::error(e, action.as_deref()).frame(Protocol::Json)]
    } else {
        Vec::new()
    };
    outbox::post_frames(app, id, &frames).await;
}

/// The chat as a Socket.IO application: the main namespace only, `auth.token` decides, the
/// welcome and waiting messages follow the CONNECT answer, and the chat events.
#[derive(Debug, Clone, Copy)]
pub struct ChatSocket;

impl<'a> SocketApp<AppEnv<'a>> for ChatSocket {
    fn has_namespace(&self, ns: &str) -> bool {
        ns == "/"
    }

    /// The chat caches settled sessions (`connections::get_settled`).
    fn sessions_are_final(&self) -> bool {
        true
    }

    async fn authorize(
        &self,
        env: &AppEnv<'a>,
        id: &ConnectionId,
        _ns: &str,
        auth_payload: Option<&Value>,
    ) -> Result<Authorized> {
        let token = auth_payload
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str)
            .map(Token::parse);
        match token {
            Some(Ok(token)) => match auth::authenticate_session(env.app, &token).await {
                Ok(session) => {
                    // Connection state recovery: a client that sends a `pid` implements it
                    // (its events get offsets from now on), and may get its session back.
                    let claim = recovery::Claim::from_auth(auth_payload);
                    let claimed_pid = auth_payload.is_some_and(|a| a.get("pid").is_some());
                    let start = recovery::start(env.app, session.user, claim.as_ref()).await?;
                    let pid = start.as_ref().map(recovery::Start::pid);
                    connections::bind_session(env.app, id, &session, pid, claimed_pid).await?;
                    if over_connection_cap(env.app, session.user).await? {
                        connections::unbind_session(env.app, id).await?;
                        return Ok(Authorized::Refused("too_many_connections".into()));
                    }
                    let principal = session.user.to_string();
                    Ok(match pid {
                        Some(pid) => Authorized::Recoverable {
                            principal,
                            pid: pid.to_owned(),
                        },
                        None => Authorized::Principal(principal),
                    })
                }
                Err(Error::Auth(_)) => Ok(Authorized::Refused("unauthorized".into())),
                Err(e) => Err(e),
            },
            _ => Ok(Authorized::Refused("unauthorized".into())),
        }
    }

    async fn connected(
        &self,
        env: &AppEnv<'a>,
        session: &Session,
        _ns: &str,
        auth: Option<Value>,
    ) -> Result<()> {
        let Some(Ok(user)) = session.principal.as_deref().map(UserId::parse) else {
            return Ok(());
        };
        let Some(conn) = connections::get(env.app, &session.id).await? else {
            return Ok(());
        };
        // Recovered when the CONNECT answer gave back the `pid` the client sent.
        let claim = recovery::Claim::from_auth(auth.as_ref());
        let start = match (&session.pid, claim) {
            (Some(pid), Some(claim)) if *pid == claim.pid => {
                match recovery::resume_point(env.app, &claim).await? {
                    Some(after) => Some(recovery::Start::Recovered {
                        pid: claim.pid,
                        after,
                    }),
                    None => Some(recovery::Start::New { pid: claim.pid }),
                }
            }
            (Some(pid), _) => Some(recovery::Start::New { pid: pid.clone() }),
            (None, _) => None,
        };
        fanout::go_live(env.app, &conn, user, false, start.as_ref()).await?;
        Ok(())
    }

    async fn event(&self, env: &AppEnv<'a>, session: &Session, event: Event) -> Result<()> {
        let Some(Ok(user)) = session.principal.as_deref().map(UserId::parse) else {
            return Ok(());
        };
        let caller = Caller {
            connection: session.id.clone(),
            user,
            protocol: Protocol::SocketIo,
        };
        sio_event(
            env.app,
            &caller,
            &event.ns,
            &event.name,
            event.args,
            event.ack,
        )
        .await
    }
}

/// `$connect` of a Socket.IO client: the runtime's handshake, as an integration response.
async fn socket_io_handshake(
    env: &AppEnv<'_>,
    id: &crate::domain::ConnectionId,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse> {
    let query = &event.query_string_parameters;
    let (eio, transport, sid) = (
        query.first("EIO"),
        query.first("transport"),
        query.first("sid"),
    );
    match polling::ws_handshake(env, id, eio, transport, sid).await? {
        Handshake::Accepted => Ok(ok()),
        Handshake::Refused(status, why) => Ok(response(i64::from(status), Some(why))),
    }
}

async fn sio_event(
    app: &App,
    caller: &Caller,
    ns: &str,
    name: &str,
    args: Vec<Value>,
    ack: Option<i64>,
) -> Result<()> {
    let id = &caller.connection;
    let result = match ClientEvent::parse(name, args.into_iter().next()) {
        Ok(event) => Box::pin(service::dispatch(app, caller, event)).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(outcome) => {
            let mut frames = Vec::new();
            if let Some(ack) = ack {
                frames.push(socketio::ack(ns, ack, &[outcome.ack]));
            }
            if let Some(reply) = outcome.reply {
                frames.push(reply.frame(Protocol::SocketIo));
            }
            let replies = async {
                outbox::post_frames(app, id, &frames).await;
            };
            match outcome.sent {
                // The ack goes out alongside the echo and the delivery, not before them.
                Some(sent) => Box::pin(sent.fan_out_with(app, replies)).await,
                None => replies.await,
            }
            Ok(())
        }
        Err(e) => {
            crate::http::log_error(&e);
            let mut frames = vec![ServerEvent::error(&e, Some(name)).frame(Protocol::SocketIo)];
            if let Some(ack) = ack {
                frames.push(socketio::ack(ns, ack, &[events::ack_error(&e)]));
            }
            outbox::post_frames(app, id, &frames).await;
            if e.is_internal() { Err(e) } else { Ok(()) }
        }
    }
}
