//! The stock clients: the socket.io-client (npm) suite under `tests/node` and the
//! python-socketio (PyPI) suite under `tests/python`, each run against its own fresh stack.
//! `make test` installs both clients into project-local folders first.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use harness::{EnvOptions, TestEnv};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

async fn run_suite(cmd: tokio::process::Command, what: &str, limit: Duration) {
    run_suite_with(EnvOptions::default(), cmd, what, limit).await;
}

async fn run_suite_with(
    options: EnvOptions,
    mut cmd: tokio::process::Command,
    what: &str,
    limit: Duration,
) {
    let env = TestEnv::with(options).await;
    cmd.env("CHAT_HTTP_URL", env.http_url())
        .env("CHAT_PING_INTERVAL_MS", "1000")
        .env("CHAT_PING_TIMEOUT_MS", "1000")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let child = cmd.output();
    let out = tokio::time::timeout(limit, child)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e} (run `make client-tools`)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
}

#[tokio::test]
async fn socket_io_client_from_npm() {
    let dir = root().join("tests/node");
    assert!(
        dir.join("node_modules/socket.io-client").exists(),
        "socket.io-client is not installed: run `make client-tools`"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("--test")
        .arg("--test-reporter=spec")
        .current_dir(&dir);
    run_suite(
        cmd,
        "the node socket.io-client suite",
        Duration::from_secs(240),
    )
    .await;
}

/// `tests/node/short-ttl/`: the stock client across a refresh of the session, on a stack
/// whose access tokens live 2 seconds (so it is not part of the main suite).
#[tokio::test]
async fn socket_io_client_across_a_session_refresh() {
    let dir = root().join("tests/node");
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(["--test", "--test-reporter=spec", "short-ttl/refresh.mjs"])
        .current_dir(&dir);
    run_suite_with(
        EnvOptions::default().var("ACCESS_TOKEN_TTL_SECS", "2"),
        cmd,
        "the node session-refresh suite",
        Duration::from_secs(120),
    )
    .await;
}

/// `tests/node/forced-close/`: the stock client recovers its session (connection state
/// recovery) across API Gateway's forced closes, shortened to 3 seconds.
#[tokio::test]
async fn socket_io_client_recovers_across_forced_closes() {
    let dir = root().join("tests/node");
    let mut cmd = tokio::process::Command::new("node");
    cmd.args([
        "--test",
        "--test-reporter=spec",
        "forced-close/recovery.mjs",
    ])
    .current_dir(&dir);
    run_suite_with(
        EnvOptions::default().var("GATEWAY_MAX_CONNECTION_S", "3"),
        cmd,
        "the node recovery suite",
        Duration::from_secs(120),
    )
    .await;
}

#[tokio::test]
async fn python_socketio_client_from_pypi() {
    let venv = std::env::var("CHAT_VENV").map_or_else(|_| root().join(".venv"), PathBuf::from);
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make client-tools`",
        python.display()
    );
    let mut cmd = tokio::process::Command::new(python);
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(root().join("tests/python"));
    run_suite(cmd, "the python-socketio suite", Duration::from_secs(240)).await;
}
