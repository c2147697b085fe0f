//! The local stand-in for AWS that developers run (`make dev`) and tests start in-process.
//!
//! One listener serves, like the AWS pieces it replaces:
//! - the HTTP API (`http_api`): every REST route, as payload v2 events;
//! - the WebSocket API (`websocket`): `/socket.io/`, `/` and `/{stage}`, with `$connect`,
//!   `$disconnect`, route selection on `$request.body.action`, `$default`, and AWS's limits;
//! - the @connections management API (`management`) that functions post to;
//! - the Lambda `Invoke` API (`lambda_api`) for asynchronous invocations;
//! - the EventBridge schedule (`schedule`): a timer that invokes the scheduler;
//! - the web client's static files (`static_site`, from `web/public`), which in AWS are in
//!   S3 behind CloudFront; API routes take precedence.
//!
//! Functions run in-process, but receive events built as JSON and deserialized into their
//! event types, and reach the gateway through the real AWS SDK clients with an endpoint
//! override: the functions have no local-only code path.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, post};
use shared::App;
use shared::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod http_api;
pub mod ids;
mod lambda_api;
mod management;
pub mod routes;
mod schedule;
mod static_site;
mod websocket;

pub use websocket::Limits;

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// The WebSocket API's stage name (`/{stage}` path and @connections prefix).
    pub stage: String,
    /// The functions' configuration; the gateway fills in the endpoints that point at itself.
    pub config: Config,
    /// How often the schedule invokes the scheduler (EventBridge: every minute in AWS).
    pub schedule_every: Duration,
    /// WebSocket idle timeout and maximum connection lifetime.
    pub limits: Limits,
    /// The HTTP API's routes (the chat's by default).
    pub http_routes: Vec<routes::HttpRoute>,
    /// The WebSocket APIs (the chat's by default).
    pub ws_apis: Vec<routes::WsApi>,
    /// A MongoDB client to use instead of one built from `MONGO_URI` (benchmarks).
    pub mongo_client: Option<mongodb::Client>,
    /// Where the web client's files are (served at `/`); `None` serves no files.
    pub web_root: Option<PathBuf>,
}

impl Options {
    pub fn local(config: Config) -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            stage: "local".into(),
            config,
            schedule_every: Duration::from_secs(5),
            limits: Limits::default(),
            http_routes: routes::http_routes(),
            ws_apis: vec![routes::WsApi::chat("local")],
            mongo_client: None,
            web_root: None,
        }
    }
}

/// State every route handler shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) app: &'static App,
    pub(crate) http_routes: Arc<Vec<routes::HttpRoute>>,
    pub(crate) ws_apis: Arc<Vec<routes::WsApi>>,
    pub(crate) invocables: Arc<Vec<routes::Invocable>>,
    pub(crate) registry: Arc<websocket::Registry>,
    pub(crate) limits: Limits,
    pub(crate) addr: SocketAddr,
    pub(crate) stage: Arc<str>,
    pub(crate) web_root: Option<Arc<PathBuf>>,
}

impl Shared {
    pub(crate) fn host_header(&self) -> String {
        self.addr.to_string()
    }
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub app: &'static App,
    pub stage: String,
    registry: Arc<websocket::Registry>,
    shutdown: Option<oneshot::Sender<()>>,
    stop_schedule: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL a Socket.IO client connects to (`io(url, {transports: ["websocket"]})`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// How many WebSocket connections are open.
    pub fn open_connections(&self) -> usize {
        self.registry.len()
    }

    /// Stops accepting, closes every connection, and waits for the server task.
    pub async fn stop(mut self) {
        let _ = self.stop_schedule.send(true);
        self.registry.close_all();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Runs until the server stops (Ctrl-C is handled by the caller).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// The SDK settings the in-process functions use: every AWS call goes to this gateway.
pub async fn sdk_config(addr: SocketAddr) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(shared::app::sdk_http_client())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "local-gateway",
        ))
        .endpoint_url(format!("http://{addr}"))
        .load()
        .await
}

/// Binds, builds the functions' [`App`], and serves in the background.
pub async fn start(options: Options) -> anyhow::Result<Gateway> {
    let listener = TcpListener::bind((options.host, options.port)).await?;
    let addr = listener.local_addr()?;
    let mut config = options.config.clone();
    config.ws.endpoint = Some(format!("http://{addr}/{}", options.stage));
    let sdk = sdk_config(addr).await;
    let app = match options.mongo_client.clone() {
        Some(client) => App::with_client(config, &sdk, client).await?,
        None => App::new(config, &sdk).await?,
    };
    let app: &'static App = Box::leak(Box::new(app));
    let registry = Arc::new(websocket::Registry::default());
    let shared = Shared {
        app,
        http_routes: Arc::new(options.http_routes.clone()),
        ws_apis: Arc::new(options.ws_apis.clone()),
        invocables: Arc::new(routes::invocables()),
        registry: registry.clone(),
        limits: options.limits,
        addr,
        stage: Arc::from(options.stage.as_str()),
        web_root: options.web_root.clone().map(Arc::new),
    };
    let (stop_schedule, schedule_stop_rx) = tokio::sync::watch::channel(false);
    schedule::spawn(shared.clone(), options.schedule_every, schedule_stop_rx);
    let mut router = Router::new();
    let mut ws_paths: Vec<&str> = options
        .ws_apis
        .iter()
        .flat_map(|a| a.paths.iter().map(String::as_str))
        .collect();
    ws_paths.sort_unstable();
    ws_paths.dedup();
    for path in ws_paths {
        router = router.route(path, any(websocket::upgrade));
    }
    let router = router
        .route(
            "/{stage}/@connections/{id}",
            post(management::post)
                .get(management::get)
                .delete(management::delete),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(lambda_api::invoke),
        )
        .fallback(http_api::serve)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            static_site::layer,
        ))
        .with_state(shared);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "gateway stopped");
        }
    });
    tracing::info!(%addr, stage = %options.stage, "local gateway listening");
    Ok(Gateway {
        addr,
        app,
        stage: options.stage,
        registry,
        shutdown: Some(tx),
        stop_schedule,
        task,
    })
}
