//! `chat-load`: see the library docs. Prints a progress line while running and a one-screen
//! summary at the end, writes the same as JSON with `--json`, and exits non-zero when
//! anything was lost, duplicated or reordered.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_load::{LoadConfig, Progress};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "chat-load",
    about = "Load generator for the chat service's REST + Socket.IO API"
)]
struct Args {
    /// REST base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    http: String,
    /// Socket.IO websocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8000/socket.io/")]
    ws: String,
    /// Users (= connections), paired into conversations.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Messages each user sends.
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// Messages per second per user (omit for flat out).
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many seconds whatever happens.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Concurrent logins and connects.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn refuse_non_loopback(url: &str) -> Result<(), String> {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or("");
    let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
    if loopback {
        Ok(())
    } else {
        Err(format!("{url}: chat-load only targets loopback addresses"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    for url in [&args.http, &args.ws] {
        if let Err(e) = refuse_non_loopback(url) {
            eprintln!("chat-load: {e}");
            return ExitCode::from(2);
        }
    }
    let cfg = LoadConfig {
        http: args.http.trim_end_matches('/').to_owned(),
        ws: args.ws.clone(),
        users: args.users,
        messages: args.messages,
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        concurrency: args.concurrency,
    };
    let progress = Arc::new(Progress::default());
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                eprint!("\r{}", progress.line(started.elapsed()));
            }
        })
    };
    let result = chat_load::run(&cfg, progress).await;
    ticker.abort();
    eprintln!();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chat-load failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.summary());
    if let Some(path) = &args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("chat-load: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => eprintln!("chat-load: {e}"),
        }
    }
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
