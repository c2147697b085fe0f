//! The chat's long-polling routes, `GET /socket.io` and `POST /socket.io` on the HTTP API:
//! the Engine.IO polling transport ([`polling`]) running the chat's Socket.IO application,
//! as HTTP responses.

use ::http::{HeaderValue, header};
use lambda_http::Body;
use tracing::Instrument;

use crate::app::App;
use crate::error::Result;
use crate::http::{self, Input, Request};
use crate::realtime::polling::{self, Method, PollReply};
use crate::realtime::sio_env::{AppEnv, engine_config};
use crate::realtime::ws::ChatSocket;
use crate::socketio::runtime::{EngineApp, SocketIo};
use crate::store::Protocol;

/// `GET /socket.io`: the handshake, or a long-poll.
pub async fn on_poll(app: &App, request: Request) -> Result<http::Response> {
    serve(app, Protocol::SocketIo, &SocketIo(&ChatSocket), request).await
}

/// `POST /socket.io` (and any other method, refused): client packets.
pub async fn on_post(app: &App, request: Request) -> Result<http::Response> {
    serve(app, Protocol::SocketIo, &SocketIo(&ChatSocket), request).await
}

/// One polling request for the Engine.IO application `engine`, whose sessions speak
/// `protocol` (the conformance server runs its own applications through this too).
pub async fn serve<A>(
    app: &App,
    protocol: Protocol,
    engine: &A,
    request: Request,
) -> Result<http::Response>
where
    A: for<'e> EngineApp<AppEnv<'e>>,
{
    let span = tracing::info_span!("poll", method = %request.method());
    async {
        let method = match *request.method() {
            ::http::Method::GET => Method::Get,
            ::http::Method::POST => Method::Post,
            _ => Method::Other,
        };
        let input = Input::new(&request);
        let env = AppEnv::with_protocol(app, protocol);
        let reply = polling::serve(
            &env,
            engine,
            &engine_config(app),
            method,
            |name| input.query(name),
            request.body(),
        )
        .await;
        Ok(match reply {
            Ok(reply) => response(reply),
            Err(e) => {
                http::log_error(&e);
                http::error_response(&e)
            }
        })
    }
    .instrument(span)
    .await
}

/// A polling answer as an HTTP response.
pub fn response(reply: PollReply) -> http::Response {
    let content_type = if reply.json {
        "application/json"
    } else {
        "text/plain; charset=UTF-8"
    };
    let mut resp = http::Response::new(Body::Text(reply.body));
    *resp.status_mut() =
        ::http::StatusCode::from_u16(reply.status).unwrap_or(::http::StatusCode::BAD_REQUEST);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
