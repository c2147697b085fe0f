//! `conformance-server`: the protocol conformance server on `localhost:3000` (`PORT` to
//! change), against `MONGO_URI` / `MONGO_DB`. `make conformance` runs it with its own
//! database. Point the official Engine.IO and Socket.IO suites at it (both transports).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let uri = std::env::var("MONGO_URI").unwrap_or_else(|_| "mongodb://localhost:27017".into());
    let db = std::env::var("MONGO_DB").unwrap_or_else(|_| "conformance".into());
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "3000".into())
        .parse()
        .context("PORT must be a port number")?;
    let gateway = conformance::start(&uri, &db, port).await?;
    println!(
        "conformance server on http://{} (ws paths /engine.io/ and /socket.io/)",
        gateway.addr
    );
    tokio::signal::ctrl_c().await?;
    gateway.stop().await;
    Ok(())
}
