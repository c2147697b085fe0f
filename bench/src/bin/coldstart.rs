//! `bench-coldstart`: each function's cold start, measured from process start to its first
//! response, by running the real binary against a minimal Lambda runtime API on loopback
//! (the `/2018-06-01/runtime/invocation/...` endpoints the Lambda runtime crate calls). The
//! first invocation gets a representative event; the median of `--runs` is reported with
//! each binary's size.
//!
//! Usage: `bench-coldstart --bin-dir target/release --runs 7 [--only f1,f2] [--json out.json]` with
//! `MONGO_URI` pointing at a migrated database.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    #[arg(long, default_value_t = 7)]
    runs: usize,
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only these functions (comma-separated); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn http_event(method: &str, path: &str, route: &str, body: Option<Value>) -> Value {
    json!({
        "version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": "",
        "headers": { "content-type": "application/json" },
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench" },
            "requestId": "bench", "routeKey": route, "stage": "$default", "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": 0
        },
        "body": body.map(|b| b.to_string()), "isBase64Encoded": false
    })
}

/// [`http_event`] with a query string (`a=1&b=2`), as API Gateway parses it too.
fn http_event_with_query(method: &str, path: &str, route: &str, query: &str) -> Value {
    let mut ev = http_event(method, path, route, None);
    ev["rawQueryString"] = json!(query);
    ev["queryStringParameters"] = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    ev
}

fn ws_event(route: &str, event_type: &str, body: Option<&str>) -> Value {
    json!({
        "requestContext": {
            "routeKey": route, "eventType": event_type, "messageDirection": "IN", "stage": "bench",
            "connectedAt": 0, "requestTimeEpoch": 0, "identity": { "sourceIp": "127.0.0.1" },
            "requestId": "bench", "domainName": "bench", "connectionId": "BenchConnXYZ12=", "apiId": "bench"
        },
        "body": body, "isBase64Encoded": false
    })
}

/// The first event each function gets: the path a real first request takes.
fn events() -> Vec<(&'static str, Value)> {
    let mobile = format!("+1415555{:04}", rand::random_range(0..10_000u32));
    vec![
        (
            "http-request-otp",
            http_event(
                "POST",
                "/users/auth/request_otp",
                "POST /users/auth/request_otp",
                Some(json!({ "mobile": mobile })),
            ),
        ),
        (
            "http-verify",
            http_event(
                "POST",
                "/users/auth/verify",
                "POST /users/auth/verify",
                Some(json!({ "mobile": mobile, "otp": "000000" })),
            ),
        ),
        (
            "http-logout",
            http_event(
                "POST",
                "/users/auth/logout",
                "POST /users/auth/logout",
                None,
            ),
        ),
        (
            "http-get-me",
            http_event("GET", "/users/me", "GET /users/me", None),
        ),
        (
            "http-update-me",
            http_event(
                "PATCH",
                "/users/me",
                "PATCH /users/me",
                Some(json!({ "display_name": "x" })),
            ),
        ),
        (
            "http-get-messages",
            http_event(
                "GET",
                "/chat/messages/6b0829c75d6f831f1c4f2715",
                "GET /chat/messages/{other_id}",
                None,
            ),
        ),
        (
            "http-refresh",
            http_event(
                "POST",
                "/users/auth/refresh",
                "POST /users/auth/refresh",
                Some(json!({ "refresh_token": "x" })),
            ),
        ),
        (
            "http-logout-all",
            http_event(
                "POST",
                "/users/auth/logout_all",
                "POST /users/auth/logout_all",
                None,
            ),
        ),
        (
            "http-list-conversations",
            http_event(
                "GET",
                "/chat/conversations",
                "GET /chat/conversations",
                None,
            ),
        ),
        (
            "http-start-conversation",
            http_event(
                "POST",
                "/chat/conversations",
                "POST /chat/conversations",
                Some(json!({ "mobile": "+14155552671" })),
            ),
        ),
        // A long-polling handshake: the session is stored, the open packet answered.
        (
            "http-eio-poll",
            http_event_with_query(
                "GET",
                "/socket.io",
                "GET /socket.io",
                "EIO=4&transport=polling",
            ),
        ),
        (
            "http-eio-post",
            http_event_with_query(
                "POST",
                "/socket.io",
                "ANY /socket.io",
                "EIO=4&transport=polling&sid=BenchSid",
            ),
        ),
        ("ws-connect", ws_event("$connect", "CONNECT", None)),
        ("ws-disconnect", ws_event("$disconnect", "DISCONNECT", None)),
        ("ws-default", ws_event("$default", "MESSAGE", Some("3"))),
        (
            "ws-send-message",
            ws_event(
                "send_message",
                "MESSAGE",
                Some(r#"{"action":"send_message","to":"x","text":"y"}"#),
            ),
        ),
        (
            "ws-typing",
            ws_event(
                "typing",
                "MESSAGE",
                Some(r#"{"action":"typing","to":"x","typing":true}"#),
            ),
        ),
        (
            "ws-read",
            ws_event(
                "read",
                "MESSAGE",
                Some(r#"{"action":"read","message_id":"x"}"#),
            ),
        ),
        (
            "scheduler",
            json!({ "version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012", "time": "2026-11-26T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {} }),
        ),
    ]
}

#[derive(Clone)]
struct Runtime {
    event: Arc<Mutex<Option<Value>>>,
    done: Arc<Mutex<Option<oneshot::Sender<Instant>>>>,
}

async fn next(State(rt): State<Runtime>) -> impl IntoResponse {
    let event = rt.event.lock().ok().and_then(|mut e| e.take());
    match event {
        Some(ev) => {
            let mut h = HeaderMap::new();
            h.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_static("bench-1"),
            );
            h.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from(u64::MAX / 2),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
            );
            (StatusCode::OK, h, ev.to_string()).into_response()
        }
        // Later polls wait; the process is killed before they matter.
        None => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn done(State(rt): State<Runtime>, _body: Bytes) -> StatusCode {
    let at = Instant::now();
    if let Some(tx) = rt.done.lock().ok().and_then(|mut d| d.take()) {
        let _ = tx.send(at);
    }
    StatusCode::ACCEPTED
}

async fn one_run(bin: &PathBuf, name: &str, event: Value, mongo: &str) -> anyhow::Result<Duration> {
    let (tx, rx) = oneshot::channel();
    let rt = Runtime {
        event: Arc::new(Mutex::new(Some(event))),
        done: Arc::new(Mutex::new(Some(tx))),
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(done))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(done))
        .with_state(rt);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("MONGO_URI", mongo)
        .env("MONGO_DB", "bench_coldstart")
        .env("CHAT_EXPERIMENTS", "off")
        // The OTP function's own work, not a text message through SNS.
        .env("OTP_MODE", "emulated")
        .env("ALLOW_EMULATED_OTP", "true")
        .env("HASH_SECRET", "bench-only-hash-secret-0123456789abcdef")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let answered = tokio::time::timeout(Duration::from_secs(30), rx).await;
    let _ = child.kill().await;
    server.abort();
    let at = answered.context("no response within 30 s")??;
    Ok(at.duration_since(started))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mongo = std::env::var("MONGO_URI").context("set MONGO_URI")?;
    let mut rows = Vec::new();
    println!(
        "{:<18} {:>10} {:>14} {:>12}",
        "function", "median ms", "runs (ms)", "binary MB"
    );
    for (name, event) in events() {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        let bin = args.bin_dir.join(name);
        let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
        let mut times = Vec::new();
        for _ in 0..args.runs {
            times.push(
                one_run(&bin, name, event.clone(), &mongo)
                    .await?
                    .as_secs_f64()
                    * 1000.0,
            );
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "{name:<18} {median:>10.1} {:>14} {:>12.2}",
            format!("{:.0}..{:.0}", sorted[0], sorted[sorted.len() - 1]),
            size as f64 / 1_048_576.0
        );
        rows.push(json!({ "function": name, "median_ms": median, "runs_ms": times, "binary_bytes": size }));
    }
    if let Some(path) = args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
