//! `chat-load` against the local gateway with a small N: it logs in, connects, chats and
//! reports a clean run; its loss/duplicate/reorder accounting is what `make bench` trusts.

use std::sync::Arc;
use std::time::Duration;

use chat_load::{LoadConfig, Progress};
use harness::{EnvOptions, TestEnv};

/// A flat-out burst queues frames behind each other (the local gateway hands a connection's
/// frames to the functions one at a time), so pongs wait too: production-like heartbeat.
async fn env() -> TestEnv {
    TestEnv::with(
        EnvOptions::default()
            .var("PING_INTERVAL_MS", "25000")
            .var("PING_TIMEOUT_MS", "20000"),
    )
    .await
}

#[tokio::test]
async fn chat_load_runs_clean_against_the_local_gateway() {
    let env = env().await;
    let cfg = LoadConfig {
        http: env.http_url(),
        ws: env.ws_url("/socket.io/"),
        users: 10,
        messages: 25,
        rate: None,
        duration: Duration::from_secs(60),
        concurrency: 8,
    };
    let progress = Arc::new(Progress::default());
    let report = chat_load::run(&cfg, progress.clone()).await.unwrap();
    assert_eq!(report.users, 10);
    assert_eq!(report.sent, 250);
    assert_eq!(report.delivered, 250, "{}", report.summary());
    assert!(report.clean(), "{}", report.summary());
    assert!(report.latency.p50_ms > 0.0 && report.latency.max_ms >= report.latency.p99_ms);
    assert!(report.delivered_per_second > 0.0);
    assert!(
        progress
            .line(Duration::from_secs(1))
            .contains("received 250")
    );
    // Every message is stored once, in its conversation.
    let stored = env
        .db
        .collection::<bson::Document>("messages")
        .count_documents(bson::doc! {})
        .await
        .unwrap();
    assert_eq!(stored, 250);
}

#[tokio::test]
async fn chat_load_paces_to_a_target_rate() {
    let env = env().await;
    let cfg = LoadConfig {
        http: env.http_url(),
        ws: env.ws_url("/socket.io/"),
        users: 4,
        messages: 10,
        rate: Some(20.0),
        duration: Duration::from_secs(60),
        concurrency: 4,
    };
    let report = chat_load::run(&cfg, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(report.clean(), "{}", report.summary());
    // 10 messages at 20/s take at least 9 gaps of 50 ms.
    assert!(report.send_seconds >= 0.44, "{}", report.send_seconds);
}
