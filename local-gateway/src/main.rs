//! `local-gateway`: serves every route of the chat service on one port (default
//! 127.0.0.1:8000), and the web client at `/` (`WEB_ROOT`, default `web/public`). `HOST`,
//! `PORT`, `STAGE`, `SCHEDULE_EVERY_MS`, `GATEWAY_INSTANCES`, `GATEWAY_FRAMES` and
//! `GATEWAY_POST_LATENCY_MS` change the gateway; the
//! functions read the same variables they read in Lambda (`MONGO_URI`, `RUN_MIGRATIONS`, ...).

use std::time::Duration;

use anyhow::Context;
use local_gateway::Options;
use shared::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let config = Config::from_env().context("reading configuration")?;
    let mut options = Options::local(config).with_env(|k| std::env::var(k).ok())?;
    if let Ok(host) = std::env::var("HOST") {
        options.host = host.parse().context("HOST must be an IP address")?;
    }
    if let Ok(port) = std::env::var("PORT") {
        options.port = port.parse().context("PORT must be a port number")?;
    }
    if let Ok(stage) = std::env::var("STAGE") {
        options.ws_apis = vec![local_gateway::routes::WsApi::chat(&stage)];
        options.stage = stage;
    }
    if let Ok(ms) = std::env::var("SCHEDULE_EVERY_MS") {
        options.schedule_every = Duration::from_millis(ms.parse().context("SCHEDULE_EVERY_MS")?);
    }
    // The web client: `WEB_ROOT`, else `web/public` when run from the repository root.
    let web_root = std::env::var_os("WEB_ROOT").map_or_else(
        || std::path::PathBuf::from("web/public"),
        std::path::PathBuf::from,
    );
    if web_root.is_dir() {
        options.web_root = Some(web_root);
    }
    let gateway = local_gateway::start(options).await?;
    println!("local gateway ready on http://{}", gateway.addr);
    println!(
        "AWS service endpoints for the functions (loopback only): {}",
        gateway.management_url()
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("Ctrl-C: stopping");
            gateway.stop().await;
        }
        _ = wait_for_sigterm() => gateway.stop().await,
    }
    Ok(())
}

async fn wait_for_sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
