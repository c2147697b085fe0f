//! The WebSocket API emulation.
//!
//! Like API Gateway: a handshake runs `$connect` first and is refused with the integration's
//! status when it is not 2xx; the connection exists (for @connections) only after that; each
//! text frame is routed by `$request.body.action` to a route or to `$default`; `$disconnect`
//! runs when either side closes. The limits are AWS's: frames over 32 KB and messages over
//! 128 KB close the connection with 1009, binary frames with 1003, 10 minutes without traffic
//! or 2 hours in all with 1001.
//!
//! Like API Gateway, each frame is its own invocation, and frames of one connection are
//! handed to the functions as they arrive, without waiting for the previous one: two may run
//! at once on different instances ([`FrameMode::Concurrent`], the default).
//! `GATEWAY_FRAMES=sequential` waits for each before the next. An API that lets binary
//! frames through (only the conformance server's, which runs nowhere but here) always runs
//! them in order: a binary packet's attachments are separate frames that must arrive in
//! order, which API Gateway would not promise (and it refuses binary frames anyway).
//!
//! [`FrameMode::Concurrent`]: crate::FrameMode::Concurrent

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use shared::config::{API_GATEWAY_MAX_FRAME, API_GATEWAY_MAX_MESSAGE};
use tokio::sync::mpsc;

use crate::http_api::json_error;
use crate::{Shared, ids};

/// What the gateway sends down one connection.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, &'static str),
}

/// A live connection, as @connections sees it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) tx: mpsc::UnboundedSender<Outgoing>,
    pub(crate) connected_at: DateTime<Utc>,
    pub(crate) last_active: Mutex<DateTime<Utc>>,
    pub(crate) source_ip: String,
    pub(crate) user_agent: String,
    /// Signalled when @connections DELETE ends the connection from the server side.
    pub(crate) deleted: tokio::sync::Notify,
}

impl Connection {
    /// Server-side close (@connections DELETE): a close frame, then the connection ends
    /// whether or not the client answers.
    pub(crate) fn delete(&self) {
        let _ = self.tx.send(Outgoing::Close(1000, "Connection deleted"));
        self.deleted.notify_one();
    }

    pub(crate) fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Utc::now();
        }
    }
}

/// Every live connection by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<String, Arc<Connection>>>,
}

impl Registry {
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.conns.lock().ok()?.get(id).cloned()
    }

    fn insert(&self, id: &str, conn: Arc<Connection>) {
        if let Ok(mut m) = self.conns.lock() {
            m.insert(id.to_owned(), conn);
        }
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Connection>> {
        self.conns.lock().ok()?.remove(id)
    }

    pub(crate) fn close_all(&self) {
        if let Ok(mut m) = self.conns.lock() {
            for (_, c) in m.drain() {
                let _ = c.tx.send(Outgoing::Close(1001, "Going away"));
                c.deleted.notify_one();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Each connection's read buffer.
const READ_BUFFER: usize = 8 * 1024;

/// AWS's idle and lifetime limits (tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(2 * 3600),
        }
    }
}

/// What the handshake told us about the client.
#[derive(Clone)]
struct Meta {
    id: String,
    /// Which WebSocket API (index in `Shared::ws_apis`) the client connected to.
    api: usize,
    connected_at: DateTime<Utc>,
    source_ip: String,
    user_agent: String,
}

pub(crate) async fn upgrade(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: axum::extract::Request,
) -> Response {
    let Some(api) = shared.ws_apis.iter().position(|a| a.serves(uri.path())) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {}", uri.path()),
        );
    };
    let Ok(ws) = ws else {
        // Not a WebSocket handshake: the HTTP API's routes (Engine.IO long-polling is
        // `GET`/`POST /socket.io/` there), as one host serves both locally.
        return crate::http_api::serve(State(shared), ConnectInfo(peer), request).await;
    };
    let meta = Meta {
        id: ids::connection_id(),
        api,
        connected_at: Utc::now(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    };
    let mut event = base_event(&shared, &meta, "$connect", "CONNECT");
    add_handshake(&mut event, &headers, uri.query().unwrap_or(""));
    match invoke(&shared, api, "$connect", event).await {
        Some(resp) if (200..300).contains(&resp.status_code) => {}
        Some(resp) => {
            let status = u16::try_from(resp.status_code)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::FORBIDDEN);
            let body = match resp.body {
                Some(LambdaBody::Text(t)) => t,
                _ => String::new(),
            };
            return (status, body).into_response();
        }
        None => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message": "Internal server error"}"#,
            )
                .into_response();
        }
    }
    ws.max_frame_size(API_GATEWAY_MAX_FRAME)
        .max_message_size(API_GATEWAY_MAX_MESSAGE)
        // Chat frames are small: a 128 KiB read buffer per connection (the default) made
        // 10,000 connections cost 1.5 GB; a larger frame still grows the buffer as needed.
        .read_buffer_size(READ_BUFFER)
        .on_failed_upgrade({
            let shared = shared.clone();
            let id = meta.id.clone();
            move |e| {
                tracing::warn!(error = %e, "upgrade failed after $connect");
                let meta_id = id;
                tokio::spawn(async move {
                    let meta = Meta {
                        id: meta_id,
                        api,
                        connected_at: Utc::now(),
                        source_ip: String::new(),
                        user_agent: String::new(),
                    };
                    disconnect(&shared, &meta, 1006, "Upgrade failed").await;
                });
            }
        })
        .on_upgrade(move |socket| run(shared, socket, meta))
}

async fn run(shared: Shared, socket: WebSocket, meta: Meta) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let conn = Arc::new(Connection {
        tx: tx.clone(),
        connected_at: meta.connected_at,
        last_active: Mutex::new(meta.connected_at),
        source_ip: meta.source_ip.clone(),
        user_agent: meta.user_agent.clone(),
        deleted: tokio::sync::Notify::new(),
    });
    shared.registry.insert(&meta.id, conn.clone());
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let msg = match out {
                Outgoing::Text(t) => Message::Text(t.into()),
                Outgoing::Binary(b) => Message::Binary(b.into()),
                Outgoing::Close(code, reason) => Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
            };
            let closing = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || closing {
                break;
            }
        }
        // Flushes the answer to a client's close frame, or our own close, and ends the stream.
        let _ = sink.close().await;
    });
    let limits = shared.limits;
    let in_order =
        shared.frames == crate::FrameMode::Sequential || shared.ws_apis[meta.api].binary_frames;
    let lifetime_end = tokio::time::Instant::now() + limits.max_lifetime;
    let (status, reason): (u16, &str) = loop {
        let idle_end = {
            let last = conn
                .last_active
                .lock()
                .map(|t| *t)
                .unwrap_or_else(|_| Utc::now());
            let idle_for = (Utc::now() - last).to_std().unwrap_or_default();
            tokio::time::Instant::now() + limits.idle_timeout.saturating_sub(idle_for)
        };
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    conn.touch();
                    if in_order {
                        dispatch(&shared, &meta, text.as_str()).await;
                    } else {
                        let (shared, meta) = (shared.clone(), meta.clone());
                        tokio::spawn(async move { dispatch(&shared, &meta, text.as_str()).await });
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if !shared.ws_apis[meta.api].binary_frames {
                        let _ = tx.send(Outgoing::Close(1003, "Binary frames are not supported"));
                        break (1003, "Binary frames are not supported");
                    }
                    conn.touch();
                    dispatch_binary(&shared, &meta, &bytes).await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => conn.touch(),
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map_or(1005, |f| f.code);
                    break (code, "Client closed");
                }
                Some(Err(e)) => {
                    if is_too_big(&e) {
                        let _ = tx.send(Outgoing::Close(1009, "Message too big"));
                        break (1009, "Message too big");
                    }
                    break (1006, "Connection lost");
                }
                None => break (1006, "Connection lost"),
            },
            () = tokio::time::sleep_until(idle_end) => {
                if (Utc::now() - conn.last_active.lock().map(|t| *t).unwrap_or_else(|_| Utc::now()))
                    .to_std()
                    .unwrap_or_default()
                    >= limits.idle_timeout
                {
                    let _ = tx.send(Outgoing::Close(1001, "Going away"));
                    break (1001, "Idle timeout");
                }
            }
            () = conn.deleted.notified() => break (1000, "Deleted"),
            () = tokio::time::sleep_until(lifetime_end) => {
                let _ = tx.send(Outgoing::Close(1001, "Going away"));
                break (1001, "Connection lifetime exceeded");
            }
        }
        if shared.registry.get(&meta.id).is_none() {
            // Deleted through @connections while we were busy.
            break (1000, "Deleted");
        }
    };
    shared.registry.remove(&meta.id);
    // Every sender gone: the writer drains what is queued, closes, and ends.
    drop(tx);
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    disconnect(&shared, &meta, status, reason).await;
}

/// A message or frame over the limits (found by the error's type, not its text).
fn is_too_big(e: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(ws) = err.downcast_ref::<WsError>() {
            return matches!(ws, WsError::Capacity(CapacityError::MessageTooLong { .. }));
        }
        source = err.source();
    }
    false
}

async fn disconnect(shared: &Shared, meta: &Meta, status: u16, reason: &str) {
    let mut event = base_event(shared, meta, "$disconnect", "DISCONNECT");
    if let Some(ctx) = event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
    {
        ctx.insert("disconnectStatusCode".into(), json!(status));
        ctx.insert("disconnectReason".into(), json!(reason));
    }
    event["headers"] =
        json!({ "Host": shared.host_header(), "x-api-key": "", "X-Forwarded-For": "" });
    event["multiValueHeaders"] =
        json!({ "Host": [shared.host_header()], "x-api-key": [""], "X-Forwarded-For": [""] });
    invoke(shared, meta.api, "$disconnect", event).await;
}

/// Route selection (`$request.body.action`), then the route's function.
async fn dispatch(shared: &Shared, meta: &Meta, text: &str) {
    let action = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned));
    let routes = &shared.ws_apis[meta.api].routes;
    let route_key = match action {
        Some(a)
            if routes
                .iter()
                .any(|r| r.route_key == a && !a.starts_with('$')) =>
        {
            a
        }
        _ => "$default".to_owned(),
    };
    let mut event = message_event(shared, meta, &route_key);
    event["body"] = json!(text);
    invoke(shared, meta.api, &route_key, event).await;
}

/// The event of one client frame: `MESSAGE`, with the frame's own message id.
fn message_event(shared: &Shared, meta: &Meta, route_key: &str) -> Value {
    let mut event = base_event(shared, meta, route_key, "MESSAGE");
    if let Some(ctx) = event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
    {
        ctx.insert("messageId".into(), json!(ids::extended_request_id()));
    }
    event
}

/// A binary frame, for APIs that let them through: `$default`, base64 in the body.
async fn dispatch_binary(shared: &Shared, meta: &Meta, bytes: &[u8]) {
    use base64::Engine as _;
    let mut event = message_event(shared, meta, "$default");
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    event["isBase64Encoded"] = json!(true);
    invoke(shared, meta.api, "$default", event).await;
}

/// Calls a route's function with the event, as API Gateway's Lambda proxy integration does.
async fn invoke(
    shared: &Shared,
    api: usize,
    route_key: &str,
    event: Value,
) -> Option<ApiGatewayProxyResponse> {
    let route = shared
        .ws_apis
        .get(api)?
        .routes
        .iter()
        .find(|r| r.route_key == route_key)?;
    let event: ApiGatewayWebsocketProxyRequest = match serde_json::from_value(event) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "built a WebSocket event the handler type cannot read");
            return None;
        }
    };
    let app = shared.instance();
    let handler = route.handler;
    match tokio::spawn(async move { handler(app, event).await }).await {
        Ok(Ok(resp)) => Some(resp),
        Ok(Err(e)) => {
            tracing::error!(function = route.function, error = %e, "function returned an error");
            None
        }
        Err(e) => {
            tracing::error!(function = route.function, error = %e, "function panicked");
            None
        }
    }
}

fn base_event(shared: &Shared, meta: &Meta, route_key: &str, event_type: &str) -> Value {
    let now = Utc::now();
    json!({
        "requestContext": {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": ids::extended_request_id(),
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "messageDirection": "IN",
            "stage": &*shared.stage,
            "connectedAt": meta.connected_at.timestamp_millis(),
            "requestTimeEpoch": now.timestamp_millis(),
            "identity": { "sourceIp": &meta.source_ip, "userAgent": &meta.user_agent },
            "requestId": ids::extended_request_id(),
            "domainName": shared.host_header(),
            "connectionId": &meta.id,
            "apiId": ids::WS_API_ID,
        },
        "isBase64Encoded": false,
    })
}

fn add_handshake(event: &mut Value, headers: &HeaderMap, raw_query: &str) {
    let mut single = Map::new();
    let mut multi = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| Value::String(v.to_owned()))
            .collect();
        if let Some(last) = values.last() {
            single.insert(canonical_header(name.as_str()), last.clone());
        }
        multi.insert(canonical_header(name.as_str()), Value::Array(values));
    }
    event["headers"] = Value::Object(single);
    event["multiValueHeaders"] = Value::Object(multi);
    let mut q = Map::new();
    let mut mq: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        q.insert(k.to_string(), Value::String(v.to_string()));
        match mq.get_mut(k.as_ref()) {
            Some(Value::Array(a)) => a.push(Value::String(v.to_string())),
            _ => {
                mq.insert(k.to_string(), json!([v.to_string()]));
            }
        }
    }
    if !q.is_empty() {
        event["queryStringParameters"] = Value::Object(q);
        event["multiValueQueryStringParameters"] = Value::Object(mq);
    }
}

/// API Gateway passes WebSocket handshake headers with their usual capitalisation.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
