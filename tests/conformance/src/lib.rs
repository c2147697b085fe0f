//! The protocol conformance server: the project's own Engine.IO/Socket.IO server
//! (`shared::socketio::runtime`, the code the Lambda functions run) behind the local
//! gateway's WebSocket emulation and the scheduler, configured and programmed as the
//! official suites (socketio/engine.io-protocol and socketio/socket.io-protocol,
//! `test-suite/`) expect their server:
//!
//! - ping interval 300 ms, ping timeout 200 ms, maxPayload 1e6, first ping one interval
//!   after the open packet, connect timeout 1000 ms;
//! - `/engine.io/`: a bare Engine.IO server that echoes every message (text and binary);
//! - `/socket.io/`: namespaces `/` and `/custom` (others refused); on connect it emits
//!   `auth` with the handshake's auth payload; it echoes `message` as `message-back` and
//!   acknowledges `message-with-ack` with its arguments; `emit-with-ack` is emitted back
//!   asking for an ack, and the ack's arguments are emitted again as `emit-with-ack`;
//!   binary attachments included everywhere.
//!
//! Both transports: the websocket one through the gateway's WebSocket emulation, HTTP
//! long-polling (and the upgrade from it) through its HTTP API, as the chat deployed.
//! Binary frames, which API Gateway refuses, are let through by this local gateway for
//! these two APIs.

use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use local_gateway::routes::{HttpRoute, WsApi, WsHandler, WsRoute};
use local_gateway::{Gateway, Options};
use shared::config::Config;
use shared::domain::ConnectionId;
use shared::realtime::sio_env::{AppEnv, state_of};
use shared::realtime::{connections, poll_routes, polling};
use shared::socketio::runtime::{self, EngineApp, Env, Frame, Handshake, SessionState, SocketIo};
use shared::socketio::suite::SuiteApp;
use shared::store::Protocol;
use shared::ws_event::{connection_id, frame_of, ok, response};
use shared::{App, Result};

pub const PING_INTERVAL_MS: u64 = 300;
pub const PING_TIMEOUT_MS: u64 = 200;
pub const MAX_PAYLOAD: u32 = 1_000_000;
pub const CONNECT_TIMEOUT_MS: u64 = 1000;

/// `/engine.io/`: echoes every message.
#[derive(Debug)]
pub struct EngineEcho;

impl<'a> EngineApp<AppEnv<'a>> for EngineEcho {
    async fn message(
        &self,
        env: &AppEnv<'a>,
        _state: &SessionState,
        id: &ConnectionId,
        data: Frame,
    ) -> Result<()> {
        match data {
            Frame::Text(payload) => {
                let _ = env.send(id, format!("4{payload}")).await;
            }
            Frame::Binary(bytes) => {
                let _ = env.send_binary(id, bytes).await;
            }
        }
        Ok(())
    }
}

/// `/socket.io/`: the official suites' application.
const SUITE: SuiteApp = SuiteApp {
    final_sessions: false,
    tokens: false,
};

async fn connect(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
    protocol: Protocol,
) -> Result<ApiGatewayProxyResponse> {
    let id = connection_id(&event)?;
    let env = AppEnv::with_protocol(app, protocol);
    let query = &event.query_string_parameters;
    let (eio, transport, sid) = (
        query.first("EIO"),
        query.first("transport"),
        query.first("sid"),
    );
    match polling::ws_handshake(&env, &id, eio, transport, sid).await? {
        Handshake::Accepted => Ok(ok()),
        Handshake::Refused(status, why) => Ok(response(i64::from(status), Some(why))),
    }
}

async fn disconnect(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse> {
    let id = connection_id(&event)?;
    if !connections::remove(app, &id).await? {
        polling::ws_disconnect(&AppEnv::new(app), &id).await?;
    }
    Ok(ok())
}

async fn default<A: for<'a> EngineApp<AppEnv<'a>>>(
    app: &App,
    engine: &A,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse> {
    let id = connection_id(&event)?;
    let env = AppEnv::new(app);
    match connections::get(app, &id).await? {
        Some(conn) => {
            let state = state_of(&conn);
            Box::pin(runtime::frame(&env, engine, &id, &state, frame_of(&event))).await?
        }
        None => match polling::upgrade_of(&env, &id).await? {
            Some(session) => {
                Box::pin(polling::ws_frame(
                    &env,
                    engine,
                    &id,
                    &session,
                    frame_of(&event),
                ))
                .await?
            }
            None => {
                let _ = app.pusher.close(&id).await;
            }
        },
    }
    Ok(ok())
}

/// One of the server's two WebSocket APIs: its path (with and without the trailing slash),
/// its own `$connect` and `$default`, and the shared `$disconnect`.
fn ws_api(
    path: &str,
    (connect_name, connect): (&'static str, WsHandler),
    (default_name, default): (&'static str, WsHandler),
) -> WsApi {
    let route = |route_key, function, handler| WsRoute {
        route_key,
        function,
        handler,
    };
    WsApi {
        paths: vec![path.into(), format!("{path}/")],
        routes: vec![
            route("$connect", connect_name, connect),
            route("$disconnect", "conformance-disconnect", |app, event| {
                Box::pin(disconnect(app, event))
            }),
            route("$default", default_name, default),
        ],
        binary_frames: true,
    }
}

fn engine_api() -> WsApi {
    ws_api(
        "/engine.io",
        ("conformance-engine-connect", |app, event| {
            Box::pin(connect(app, event, Protocol::Engine))
        }),
        ("conformance-engine-default", |app, event| {
            Box::pin(default(app, &EngineEcho, event))
        }),
    )
}

fn socket_api() -> WsApi {
    ws_api(
        "/socket.io",
        ("conformance-socket-connect", |app, event| {
            Box::pin(connect(app, event, Protocol::SocketIo))
        }),
        ("conformance-socket-default", |app, event| {
            Box::pin(default(app, &SocketIo(&SUITE), event))
        }),
    )
}

/// Long-polling for both: `/engine.io` and `/socket.io`, `GET` and every other method.
fn polling_routes() -> Vec<HttpRoute> {
    macro_rules! poll_route {
        ($key:literal, $function:literal, $protocol:expr, $engine:expr) => {
            local_gateway::http_route!($key, $function, |app, req| {
                poll_routes::serve(app, $protocol, $engine, req)
            })
        };
    }
    vec![
        poll_route!(
            "GET /engine.io",
            "conformance-engine-poll",
            Protocol::Engine,
            &EngineEcho
        ),
        poll_route!(
            "ANY /engine.io",
            "conformance-engine-post",
            Protocol::Engine,
            &EngineEcho
        ),
        poll_route!(
            "GET /socket.io",
            "conformance-socket-poll",
            Protocol::SocketIo,
            &SocketIo(&SUITE)
        ),
        poll_route!(
            "ANY /socket.io",
            "conformance-socket-post",
            Protocol::SocketIo,
            &SocketIo(&SUITE)
        ),
    ]
}

/// The suites' settings on top of a database.
pub fn config(mongo_uri: &str, mongo_db: &str) -> Config {
    let vars = [
        ("MONGO_URI", mongo_uri),
        ("MONGO_DB", mongo_db),
        ("RUN_MIGRATIONS", "1"),
        ("CHAT_EXPERIMENTS", "off"),
    ];
    let mut config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap_or_else(|_| unreachable_config());
    config.ws.ping_interval = Duration::from_millis(PING_INTERVAL_MS);
    config.ws.ping_timeout = Duration::from_millis(PING_TIMEOUT_MS);
    config.ws.max_payload = MAX_PAYLOAD;
    config.ws.connect_timeout = Duration::from_millis(CONNECT_TIMEOUT_MS);
    config
}

// The literal settings above always parse; this keeps `config` free of unwrap.
fn unreachable_config() -> Config {
    Config::from_lookup(|_| None)
        .unwrap_or_else(|e| panic!("default configuration is invalid: {e}"))
}

/// Starts the server: `port` 3000 for the official suites, 0 for tests.
pub async fn start(mongo_uri: &str, mongo_db: &str, port: u16) -> anyhow::Result<Gateway> {
    let mut options = Options::local(config(mongo_uri, mongo_db));
    options.host = std::net::IpAddr::from([127, 0, 0, 1]);
    options.port = port;
    // The sweep sends pings; a fine period keeps them close to the 300 ms interval.
    options.schedule_every = Duration::from_millis(20);
    options.http_routes = polling_routes();
    options.ws_apis = vec![engine_api(), socket_api()];
    local_gateway::start(options).await
}
