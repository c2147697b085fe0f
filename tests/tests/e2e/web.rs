//! The web client in a real browser: the Playwright suite under `web/tests` (Chromium from
//! the system, `/usr/bin/chromium` or `CHROMIUM`) against a fresh stack of its own, with the
//! gateway's URL in `CHAT_HTTP_URL` and, in `CHAT_CONTROL_URL`, a small control endpoint the
//! suite calls to make the server drop a user's WebSockets (`POST /drop/<user_id>`: every
//! connection of that user is deleted through the @connections API, as API Gateway would).
//! `make test` installs the suite (`npm ci` in `web/`) and Chromium first.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use futures::TryStreamExt;
use harness::TestEnv;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[derive(Clone)]
struct Control {
    db: mongodb::Database,
    /// The gateway's AWS service endpoints (@connections).
    management: String,
    stage: String,
}

/// Deletes every WebSocket connection of `user` through the @connections API.
async fn drop_user(State(c): State<Control>, UrlPath(user): UrlPath<String>) -> String {
    let Ok(oid) = bson::oid::ObjectId::parse_str(&user) else {
        return "0".into();
    };
    let ids: Vec<bson::Document> =
        c.db.collection::<bson::Document>("connections")
            .find(bson::doc! { "user_id": oid })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
    let client = reqwest::Client::new();
    let mut dropped = 0;
    for d in ids {
        if let Ok(id) = d.get_str("_id") {
            let url = format!("{}/{}/@connections/{}", c.management, c.stage, id);
            if client
                .delete(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                dropped += 1;
            }
        }
    }
    dropped.to_string()
}

#[tokio::test]
async fn web_client_in_chromium() {
    let web = root().join("web");
    assert!(
        web.join("node_modules/@playwright/test").exists(),
        "the browser tests are not installed: run `make web-tools`"
    );
    assert!(
        web.join("public/vendor/socket.io.esm.min.js").exists(),
        "web/public/vendor is missing: run `make web-tools`"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run `make web-tools` (apt-get install chromium)"
    );
    // Short-lived access tokens: the browser must refresh its session while it chats.
    let env = TestEnv::with(harness::EnvOptions::default().var("ACCESS_TOKEN_TTL_SECS", "4")).await;
    let control = Control {
        db: env.db.clone(),
        management: env.gateway.management_url(),
        stage: env.gateway.stage.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control_url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/drop/{user}", post(drop_user))
        .with_state(control);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("node_modules/@playwright/test/cli.js")
        .args(["test", "--config", "tests/playwright.config.mjs"])
        .current_dir(&web)
        .env("CHAT_HTTP_URL", env.http_url())
        .env("CHAT_CONTROL_URL", &control_url)
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("CI", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Ok(shot) = std::env::var("CHAT_SCREENSHOT") {
        cmd.env("CHAT_SCREENSHOT", shot);
    }
    let limit = Duration::from_secs(300);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the browser suite took longer than {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run the browser suite: {e}"));
    server.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "the browser suite failed:\n{stdout}\n{stderr}"
    );
}
