//! The local stand-in for AWS that developers run (`make dev`) and tests start in-process.
//!
//! It serves, like the AWS pieces it replaces (the public APIs on `HOST`:`PORT`; the AWS
//! service endpoints the functions call on a loopback-only listener of their own):
//! - the HTTP API (`http_api`): every REST route, as payload v2 events;
//! - the WebSocket API (`websocket`): `/socket.io/`, `/` and `/{stage}`, with `$connect`,
//!   `$disconnect`, route selection on `$request.body.action`, `$default`, and AWS's limits;
//! - the @connections management API (`management`) that functions post to;
//! - the Lambda `Invoke` API (`lambda_api`) for asynchronous invocations;
//! - the EventBridge schedule (`schedule`): a timer that invokes the scheduler;
//! - Amazon SNS `Publish` to phone numbers (`sns`), with an outbox at `/local/sms/{mobile}`;
//! - the web client's static files (`static_site`, from `web/public`), which in AWS are in
//!   S3 behind CloudFront; API routes take precedence.
//!
//! Functions run in-process, but receive events built as JSON and deserialized into their
//! event types, and reach the gateway through the real AWS SDK clients with an endpoint
//! override: the functions have no local-only code path.
//!
//! It is no friendlier than AWS: every function runs as several warm instances (each its
//! own [`App`], with its own caches and database client; `GATEWAY_INSTANCES`, default 3)
//! and invocations are spread over them; one connection's frames are handed to the
//! functions concurrently, as API Gateway may (`GATEWAY_FRAMES=sequential` for one after
//! the other); @connections posts and Lambda invokes can be given AWS-like latency
//! (`GATEWAY_POST_LATENCY_MS`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get, post};
use axum::serve::ListenerExt;
use shared::App;
use shared::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod cors;
mod http_api;
pub mod ids;
mod lambda_api;
mod management;
pub mod routes;
mod schedule;
pub mod secrets;
pub mod sns;
mod static_site;
mod websocket;

pub use websocket::Limits;

/// How one connection's frames reach the functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameMode {
    /// Each frame is its own invocation, started as it arrives: two frames of one
    /// connection may run at once, on different instances (what API Gateway may do).
    Concurrent,
    /// One after the other, each waiting for the previous invocation to finish.
    Sequential,
}

impl FrameMode {
    /// `GATEWAY_FRAMES`: `concurrent` (default) or `sequential`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "concurrent" => Some(Self::Concurrent),
            "sequential" => Some(Self::Sequential),
            _ => None,
        }
    }
}

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
    /// Warm instances per function (each its own `App`); invocations are spread over them.
    pub instances: usize,
    pub frames: FrameMode,
    /// Added to every @connections call and Lambda invoke before it is answered.
    pub post_latency: Duration,
    /// Where the web client's files are (served at `/`); `None` serves no files.
    pub web_root: Option<PathBuf>,
    /// Numbers the SNS emulation refuses as undeliverable (`GATEWAY_SMS_UNDELIVERABLE`).
    pub sms_undeliverable: HashSet<String>,
    /// Every SNS publish fails (`GATEWAY_SMS_OUTAGE=1`).
    pub sms_outage: bool,
    /// The Secrets Manager emulation's secrets, id → secret string (`GATEWAY_SECRETS_FILE`).
    pub secrets: HashMap<String, String>,
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
            instances: 3,
            frames: FrameMode::Concurrent,
            post_latency: Duration::ZERO,
            web_root: None,
            sms_undeliverable: HashSet::new(),
            sms_outage: false,
            secrets: HashMap::new(),
        }
    }

    /// `GATEWAY_INSTANCES`, `GATEWAY_FRAMES`, `GATEWAY_POST_LATENCY_MS`, the SMS failure
    /// switches, `GATEWAY_MAX_CONNECTION_S`, `GATEWAY_IDLE_S` and `GATEWAY_SECRETS_FILE`
    /// from `get`.
    pub fn with_env(mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        if let Some(n) = get("GATEWAY_INSTANCES") {
            let n: usize = n
                .parse()
                .map_err(|_| anyhow::anyhow!("GATEWAY_INSTANCES must be a number"))?;
            anyhow::ensure!(n >= 1, "GATEWAY_INSTANCES must be at least 1");
            self.instances = n;
        }
        if let Some(f) = get("GATEWAY_FRAMES") {
            self.frames = FrameMode::parse(&f).ok_or_else(|| {
                anyhow::anyhow!("GATEWAY_FRAMES must be `concurrent` or `sequential`")
            })?;
        }
        if let Some(list) = get("GATEWAY_SMS_UNDELIVERABLE") {
            self.sms_undeliverable = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = get("GATEWAY_SMS_OUTAGE") {
            self.sms_outage = v == "1" || v == "true";
        }
        // API Gateway's 2-hour cap and 10-minute idle timeout, shortened for tests.
        for (key, field) in [
            ("GATEWAY_MAX_CONNECTION_S", &mut self.limits.max_lifetime),
            ("GATEWAY_IDLE_S", &mut self.limits.idle_timeout),
        ] {
            if let Some(secs) = get(key) {
                let secs: f64 = secs
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| anyhow::anyhow!("{key} must be a positive number of seconds"))?;
                *field = Duration::from_secs_f64(secs);
            }
        }
        if let Some(path) = get("GATEWAY_SECRETS_FILE").filter(|p| !p.is_empty()) {
            self.secrets = secrets::read_file(&path)?;
        }
        if let Some(ms) = get("GATEWAY_POST_LATENCY_MS") {
            let ms: u64 = ms
                .parse()
                .map_err(|_| anyhow::anyhow!("GATEWAY_POST_LATENCY_MS must be a number"))?;
            self.post_latency = Duration::from_millis(ms);
        }
        Ok(self)
    }
}

/// State every route handler shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// One `App` per warm instance.
    pub(crate) apps: Arc<Vec<&'static App>>,
    next_instance: Arc<AtomicUsize>,
    pub(crate) frames: FrameMode,
    pub(crate) post_latency: Duration,
    pub(crate) http_routes: Arc<Vec<routes::HttpRoute>>,
    pub(crate) ws_apis: Arc<Vec<routes::WsApi>>,
    pub(crate) invocables: Arc<Vec<routes::Invocable>>,
    pub(crate) registry: Arc<websocket::Registry>,
    pub(crate) limits: Limits,
    pub(crate) addr: SocketAddr,
    pub(crate) stage: Arc<str>,
    pub(crate) web_root: Option<Arc<PathBuf>>,
    pub(crate) sms: Arc<sns::SmsCenter>,
}

impl Shared {
    pub(crate) fn host_header(&self) -> String {
        self.addr.to_string()
    }

    /// The instance an invocation runs on: the next one in turn, so consecutive
    /// invocations (one connection's frames among them) land on different instances.
    pub(crate) fn instance(&self) -> &'static App {
        let i = self.next_instance.fetch_add(1, Ordering::Relaxed);
        self.apps[i % self.apps.len()]
    }

    /// AWS-like latency of an @connections call or a Lambda invoke.
    pub(crate) async fn api_latency(&self) {
        if !self.post_latency.is_zero() {
            tokio::time::sleep(self.post_latency).await;
        }
    }
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    /// Where the AWS service endpoints the functions call listen (loopback only).
    pub management_addr: SocketAddr,
    management_shutdown: Option<oneshot::Sender<()>>,
    management_task: tokio::task::JoinHandle<()>,
    secrets_task: tokio::task::JoinHandle<()>,
    /// The first instance (tests read the database through it).
    pub app: &'static App,
    /// Every instance.
    pub apps: Vec<&'static App>,
    /// The SNS emulation: the text messages sent, and its failure switches.
    pub sms: Arc<sns::SmsCenter>,
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

    /// The base URL of the AWS service endpoints (`/{stage}/@connections/{id}`, Lambda
    /// Invoke, SNS, and the SMS outbox), loopback only.
    pub fn management_url(&self) -> String {
        format!("http://{}", self.management_addr)
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
        if let Some(tx) = self.management_shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        let _ = (&mut self.management_task).await;
        self.secrets_task.abort();
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

/// Frames go out as soon as they are written, as API Gateway sends them: without
/// TCP_NODELAY a second small frame waits for the client's delayed ACK (about 40 ms).
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::warn!(error = %e, "could not set TCP_NODELAY");
    }
}

/// Binds, builds the functions' [`App`], and serves in the background.
pub async fn start(options: Options) -> anyhow::Result<Gateway> {
    let listener = TcpListener::bind((options.host, options.port)).await?;
    let addr = listener.local_addr()?;
    // The AWS service endpoints the functions call (@connections, Lambda Invoke, SNS) are
    // not the public APIs: they listen on loopback only, on a port of their own, whatever
    // HOST the APIs are served on.
    let management = TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0)).await?;
    let mgmt_addr = management.local_addr()?;
    let mut config = options.config.clone();
    config.ws.endpoint = Some(format!("http://{mgmt_addr}/{}", options.stage));
    config.sns_endpoint = Some(format!(
        "http://{mgmt_addr}{}",
        sns::PATH.trim_end_matches('/')
    ));
    // Secrets Manager answers the functions' cold starts, so it is up before them.
    let (secrets_url, secrets_task) = secrets::serve(options.secrets.clone()).await?;
    if let Some(source) = config.secrets.as_mut() {
        source.endpoint = Some(secrets_url);
    }
    let sdk = sdk_config(mgmt_addr).await;
    let mut apps: Vec<&'static App> = Vec::new();
    for _ in 0..options.instances.max(1) {
        // Each instance is a cold start of its own: its own client, caches and random source.
        let app = match options.mongo_client.clone() {
            Some(client) => App::with_client(config.clone(), &sdk, client).await,
            None => App::new(config.clone(), &sdk).await,
        };
        let app = app.inspect_err(|_| secrets_task.abort())?;
        apps.push(Box::leak(Box::new(app)));
    }
    let app = apps[0];
    let registry = Arc::new(websocket::Registry::default());
    let shared = Shared {
        apps: Arc::new(apps.clone()),
        next_instance: Arc::new(AtomicUsize::new(0)),
        frames: options.frames,
        post_latency: options.post_latency,
        http_routes: Arc::new(options.http_routes.clone()),
        ws_apis: Arc::new(options.ws_apis.clone()),
        invocables: Arc::new(routes::invocables()),
        registry: registry.clone(),
        limits: options.limits,
        addr,
        stage: Arc::from(options.stage.as_str()),
        web_root: options.web_root.clone().map(Arc::new),
        sms: Arc::new(sns::SmsCenter::new(
            options.sms_undeliverable.clone(),
            options.sms_outage,
        )),
    };
    let shared_sms = shared.sms.clone();
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
    // The SMS outbox shows login codes: only where the APIs themselves are loopback-only.
    if options.host.is_loopback() {
        router = router.route("/local/sms/{mobile}", get(sns::outbox));
    }
    let router = router
        .fallback(http_api::serve)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            static_site::layer,
        ))
        .with_state(shared.clone());
    let management_router = Router::new()
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
        .route(sns::PATH, post(sns::publish))
        .route("/local/sms/{mobile}", get(sns::outbox))
        .with_state(shared);
    let (mgmt_tx, mgmt_rx) = oneshot::channel::<()>();
    let management_task = tokio::spawn(async move {
        let served = axum::serve(
            management.tap_io(no_delay),
            management_router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = mgmt_rx.await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "management endpoints stopped");
        }
    });
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener.tap_io(no_delay),
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
    tracing::info!(%mgmt_addr, "AWS service endpoints (@connections, Lambda, SNS) on loopback");
    tracing::info!(instances = apps.len(), frames = ?options.frames, "function instances");
    let sms = shared_sms;
    Ok(Gateway {
        addr,
        management_addr: mgmt_addr,
        management_shutdown: Some(mgmt_tx),
        management_task,
        secrets_task,
        app,
        apps,
        sms,
        stage: options.stage,
        registry,
        shutdown: Some(tx),
        stop_schedule,
        task,
    })
}
