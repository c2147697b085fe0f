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
}

impl Default for EnvOptions {
    fn default() -> Self {
        let vars = [
            ("CHAT_EXPERIMENTS", "off"),
            ("RUN_MIGRATIONS", "1"),
            ("PING_INTERVAL_MS", "1000"),
            ("PING_TIMEOUT_MS", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            vars,
            schedule_every: Duration::from_millis(200),
            limits: local_gateway::Limits::default(),
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
        let db_name = unique_db_name();
        let mut vars = options.vars.clone();
        vars.insert("MONGO_URI".into(), mongo_uri().to_owned());
        vars.insert("MONGO_DB".into(), db_name.clone());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config is valid");
        let mut gw = Options::local(config);
        gw.port = 0;
        gw.schedule_every = options.schedule_every;
        gw.limits = options.limits;
        gw.web_root = Some(workspace_root().join("web/public"));
        let gateway = local_gateway::start(gw).await.expect("gateway starts");
        let api = Api::new(gateway.http_url());
        let db = gateway.app.store.db.clone();
        TestEnv { gateway, api, db }
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
