//! Test harness: one `secantusd-rs` per test process, a fresh migrated database per test, and
//! a local gateway on port 0 serving that database.
//!
//! The server binary comes from `SECANTUSD` or `.tools/bin/secantusd-rs` (what `make`
//! installs) or `PATH`. A small shell watchdog stops it and removes its data folder when the
//! test process exits, so no server outlives the tests.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use local_gateway::{Gateway, Options};
use serde_json::Value;
use shared::config::Config;

pub mod client;
pub mod ws;

pub use client::Api;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn secantusd_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SECANTUSD") {
        return PathBuf::from(p);
    }
    let local = workspace_root().join(".tools/bin/secantusd-rs");
    if local.exists() {
        return local;
    }
    PathBuf::from("secantusd-rs")
}

/// The MongoDB URI of this test process's server (started on first use).
pub fn mongo_uri() -> &'static str {
    static URI: OnceLock<String> = OnceLock::new();
    URI.get_or_init(|| {
        if let Ok(uri) = std::env::var("TEST_MONGO_URI") {
            return uri;
        }
        let root = workspace_root().join("target/test-data");
        let dir = root.join(format!("secantus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("stdout.log");
        let data = dir.join("data");
        let bin = secantusd_binary();
        // The watchdog: start the server, wait for this process to go away, stop the server,
        // wait for it to exit, then delete its folder.
        let script = format!(
            r#""$0" --port 0 --storage-path "{data}" --log-file-max 16MB --log-level WARNING > "{out}" 2>&1 &
srv=$!
while kill -0 {parent} 2>/dev/null && kill -0 $srv 2>/dev/null; do sleep 0.5; done
kill $srv 2>/dev/null; wait $srv; rm -rf "{dir}""#,
            data = data.display(),
            out = out.display(),
            parent = std::process::id(),
            dir = dir.display(),
        );
        // The watchdog outlives this handle on purpose: it waits for us, not we for it.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&bin)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.strip_prefix("secantusd-rs listening on "))
            {
                return format!("mongodb://{}/?directConnection=true", addr.trim());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "secantusd-rs ({}) did not start: {}",
                bin.display(),
                std::fs::read_to_string(&out).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// A name no other test uses.
pub fn unique_db_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// Settings for one test's stack.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// Environment-style configuration on top of the test defaults.
    pub vars: HashMap<String, String>,
    pub schedule_every: Duration,
    pub limits: local_gateway::Limits,
    /// Secrets the gateway's Secrets Manager emulation holds (id → secret string).
    pub secrets: HashMap<String, String>,
}

impl Default for EnvOptions {
    /// The experiments are off unless `CHAT_TEST_EXPERIMENTS=on`, which runs every test
    /// with the production defaults (latency illusion, drift, chronology on); tests that
    /// need them off or on say so themselves.
    fn default() -> Self {
        let experiments = match std::env::var("CHAT_TEST_EXPERIMENTS").as_deref() {
            Ok("on") => "on",
            _ => "off",
        };
        let vars = [
            ("CHAT_EXPERIMENTS", experiments),
            ("RUN_MIGRATIONS", "1"),
            ("PING_INTERVAL_MS", "1000"),
            ("PING_TIMEOUT_MS", "1000"),
            // The SMS path is the tested one: logins read the code from the SNS emulation.
            ("OTP_MODE", "sms"),
            // Every test logs in from 127.0.0.1; the per-address limits have tests of their
            // own (the per-number ones keep their production values).
            ("OTP_REQUESTS_PER_IP", "1000000"),
            ("VERIFY_ATTEMPTS_PER_IP", "1000000"),
            // Storms of sends are what many tests are about; the send rate has its own test.
            ("EVENTS_PER_USER", "1000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            vars,
            schedule_every: Duration::from_millis(200),
            limits: local_gateway::Limits::default(),
            secrets: HashMap::new(),
        }
    }
}

impl EnvOptions {
    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// One test's stack: its own database, its own gateway.
pub struct TestEnv {
    pub gateway: Gateway,
    pub api: Api,
    pub db: mongodb::Database,
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::with(EnvOptions::default()).await
    }

    pub async fn with(options: EnvOptions) -> TestEnv {
        Self::try_with(options).await.expect("gateway starts")
    }

    /// As [`TestEnv::with`], with the gateway's start-up error (a cold start that fails).
    pub async fn try_with(options: EnvOptions) -> anyhow::Result<TestEnv> {
        let db_name = unique_db_name();
        let mut vars = options.vars.clone();
        vars.entry("MONGO_URI".into())
            .or_insert_with(|| mongo_uri().to_owned());
        vars.insert("MONGO_DB".into(), db_name.clone());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config is valid");
        // The gateway as `make dev` runs it (several instances, concurrent frames), unless
        // the test or the environment (`GATEWAY_*`) says otherwise.
        let mut gw = Options::local(config);
        gw.limits = options.limits;
        let mut gw = gw
            .with_env(|k| vars.get(k).cloned().or_else(|| std::env::var(k).ok()))
            .expect("gateway settings are valid");
        gw.port = 0;
        gw.schedule_every = options.schedule_every;
        gw.web_root = Some(workspace_root().join("web/public"));
        gw.secrets = options.secrets;
        let gateway = local_gateway::start(gw).await?;
        let api = Api::new(gateway.http_url());
        let db = gateway.app.store.db.clone();
        Ok(TestEnv { gateway, api, db })
    }

    pub fn http_url(&self) -> String {
        self.gateway.http_url()
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.gateway.addr, path)
    }

    pub fn app(&self) -> &'static shared::App {
        self.gateway.app
    }
}

/// `json["a"]["b"]` as a string, or a panic naming the path.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

/// Polls `check` until it holds, failing the test with `what` after `limit`: how tests wait
/// for a condition (never a fixed sleep).
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many documents of `collection` match `filter`.
pub async fn count(db: &mongodb::Database, collection: &str, filter: bson::Document) -> u64 {
    db.collection::<bson::Document>(collection)
        .count_documents(filter)
        .await
        .unwrap()
}

/// A `secantusd-rs` of one test's own, on a fixed port and data folder, that the test can
/// stop and start again (the shared server of [`mongo_uri`] must never stop).
pub struct DbServer {
    dir: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl DbServer {
    pub fn start() -> DbServer {
        let dir = workspace_root().join("target/test-data").join(format!(
            "own-{}-{}",
            std::process::id(),
            unique_db_name()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = DbServer {
            dir,
            port,
            child: None,
        };
        server.up();
        server
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Starts the server (again) on the same port and data, and waits until it listens.
    pub fn up(&mut self) {
        let log = self.dir.join("server.log");
        let _ = std::fs::remove_file(&log);
        let child = Command::new(secantusd_binary())
            .args(["--port", &self.port.to_string(), "--storage-path"])
            .arg(self.dir.join("data"))
            .args(["--log-level", "WARNING"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "secantusd-rs did not come up: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM, so it shuts down cleanly) and waits for it to exit.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if started.elapsed() > Duration::from_secs(20) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for DbServer {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
