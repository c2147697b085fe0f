//! `bench-sweep`: many Socket.IO connections held open against a running local gateway,
//! to show the scheduler's sharded sweep keeping every one of them alive. Logs in one user
//! per `--per-user` connections over REST, connects them all (websocket, `auth: {token}`),
//! answers every Engine.IO ping, then watches for `--observe-secs` and reports, as JSON:
//! - the sweep rounds seen (pings grouped by arrival, a gap of half the schedule period or
//!   more between rounds): how many connections each pinged and how long its wave of pings
//!   took from first to last (the sweep's time, fan-out included, as clients see it);
//! - whether every connection open when the watch began was pinged in every whole round,
//!   the longest gap a connection saw between two pings, and connections closed on the way
//!   (while the others were still connecting, and while watched), by the server or by this
//!   client giving up on it as a stock client does (no ping for `pingInterval +
//!   pingTimeout`);
//! - the server's and the database's resident memory before and after the connections
//!   (`--server-pid`, `--db-pid`), per connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use serde_json::json;
use test_client::{Frame, Socket};

#[derive(Parser, Debug)]
#[command(about = "Holds many Socket.IO connections open and reports the sweep's pings")]
struct Args {
    /// REST base URL of the gateway.
    #[arg(long)]
    http: String,
    /// Socket.IO endpoint (`ws://host:port/socket.io/`).
    #[arg(long)]
    ws: String,
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Connections per user (at most the server's MAX_CONNECTIONS_PER_USER).
    #[arg(long, default_value_t = 10)]
    per_user: usize,
    /// The gateway's schedule period (SCHEDULE_EVERY_MS), to tell rounds apart.
    #[arg(long, default_value_t = 20_000)]
    schedule_ms: u64,
    /// How long to watch once every connection is open.
    #[arg(long, default_value_t = 70)]
    observe_secs: u64,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    db_pid: Option<u32>,
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What one connection saw while watched: ping arrival times (ms from the start of the
/// watch) and whether it was closed.
#[derive(Debug, Default)]
struct Seen {
    pings: Vec<u64>,
    closed: bool,
    /// Closed before the watch began (while the others were still connecting).
    closed_early: bool,
    /// Closed by this client: no ping for `pingInterval + pingTimeout`, which is when a
    /// stock client gives up on the server.
    gave_up: bool,
}

/// When the watch began (set once every connection is open) and whether it is over.
#[derive(Default)]
struct Watch {
    from: std::sync::OnceLock<Instant>,
    over: std::sync::atomic::AtomicBool,
}

/// Answers pings from the moment the connection is open (a connection left unanswered
/// while the others connect would be dropped as silent), recording those after the watch
/// began, until the watch is over.
async fn hold(mut s: Socket, opened: Instant, watch: Arc<Watch>) -> Seen {
    let mut seen = Seen::default();
    let ms = |key: &str| s.open[key].as_u64().unwrap_or(25_000);
    let give_up_after = Duration::from_millis(ms("pingInterval") + ms("pingTimeout"));
    let mut last_ping = opened;
    loop {
        if last_ping.elapsed() > give_up_after {
            seen.gave_up = true;
            seen.closed = true;
            seen.closed_early = watch.from.get().is_none();
            return seen;
        }
        match s.ws.next(Duration::from_millis(250)).await {
            Frame::Text(t) if t == "2" => {
                last_ping = Instant::now();
                if let Some(from) = watch.from.get() {
                    seen.pings.push(from.elapsed().as_millis() as u64);
                }
                if s.send("3").await.is_err() {
                    seen.closed = true;
                    return seen;
                }
            }
            Frame::Close(_) | Frame::Ended => {
                seen.closed = true;
                seen.closed_early = watch.from.get().is_none();
                return seen;
            }
            _ => {}
        }
        if watch.over.load(std::sync::atomic::Ordering::Acquire) {
            return seen;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::new();
    let users_needed = args.connections.div_ceil(args.per_user.max(1));
    let started = Instant::now();
    let mobiles = chat_load::distinct_mobiles(users_needed);
    let users: Vec<test_client::Session> = futures::stream::iter(&mobiles)
        .map(|mobile| chat_load::login_as(&http, &args.http, mobile))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("logging in")?;
    let logged_in = started.elapsed();
    eprintln!("{} users logged in in {logged_in:?}", users.len());

    let (server0, db0) = (rss_kib(args.server_pid), rss_kib(args.db_pid));
    // Everything is opened first, then watched: pings before the watch are answered, not
    // counted.
    let opened_at = Instant::now();
    let tokens: Vec<String> = (0..args.connections)
        // A user's connections are spread over the run (devices do not all connect in
        // the same instant; ten at once contend for the user's inbox in the welcome).
        .map(|i| users[i % users.len()].token.clone())
        .collect();
    let watch = Arc::new(Watch::default());
    let mut failed = 0usize;
    let results: Vec<anyhow::Result<tokio::task::JoinHandle<Seen>>> = futures::stream::iter(tokens)
        .map(|token| {
            let (url, watch) = (args.ws.clone(), watch.clone());
            async move {
                let opened = Instant::now();
                let s = Socket::join(&url, &token, Duration::from_secs(60)).await?;
                Ok(tokio::spawn(hold(s, opened, watch)))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let connect_all = opened_at.elapsed();
    let mut holders = Vec::with_capacity(args.connections);
    for r in results {
        match r {
            Ok(h) => holders.push(h),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("a connection failed: {e:#}");
                }
            }
        }
    }
    eprintln!(
        "{} connections open in {connect_all:?} ({failed} failed)",
        holders.len()
    );
    let (server1, db1) = (rss_kib(args.server_pid), rss_kib(args.db_pid));

    let _ = watch.from.set(Instant::now());
    tokio::time::sleep(Duration::from_secs(args.observe_secs)).await;
    watch.over.store(true, std::sync::atomic::Ordering::Release);
    let mut seen = Vec::with_capacity(holders.len());
    for h in holders {
        seen.push(h.await.unwrap_or(Seen {
            pings: Vec::new(),
            closed: true,
            closed_early: false,
            gave_up: false,
        }));
    }

    // Rounds: every ping's arrival, grouped where a gap of half a period or more separates
    // them.
    let mut all: Vec<(u64, usize)> = seen
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.pings.iter().map(move |t| (*t, i)))
        .collect();
    all.sort_unstable();
    let split = args.schedule_ms / 2;
    let mut rounds: Vec<Vec<(u64, usize)>> = Vec::new();
    for p in all {
        match rounds.last_mut() {
            Some(r) if r.last().is_some_and(|last| p.0 - last.0 < split) => r.push(p),
            _ => rounds.push(vec![p]),
        }
    }
    let observe_ms = args.observe_secs * 1000;
    let n = seen.len();
    let round_reports: Vec<serde_json::Value> = rounds
        .iter()
        .map(|r| {
            let first = r.first().map_or(0, |p| p.0);
            let last = r.last().map_or(0, |p| p.0);
            let mut conns: Vec<usize> = r.iter().map(|p| p.1).collect();
            conns.sort_unstable();
            conns.dedup();
            // Whole: every connection was due in it (it began a schedule period or more
            // into the watch, so the round before it was watched too) and it ended before
            // the watch did.
            let whole = first >= args.schedule_ms && last + split < observe_ms;
            json!({
                "at_ms": first,
                "wave_ms": last - first,
                "pinged": conns.len(),
                "pings": r.len(),
                "whole": whole,
            })
        })
        .collect();
    let whole: Vec<&serde_json::Value> = round_reports
        .iter()
        .filter(|r| r["whole"] == true)
        .collect();
    // Connections the server closed while the others were still connecting are not
    // watched (they are reported); every one open when the watch began must be pinged in
    // every whole round and stay open.
    let closed_early = seen.iter().filter(|s| s.closed_early).count();
    let watched = n - closed_early;
    let everyone_every_round = !whole.is_empty()
        && whole
            .iter()
            .all(|r| r["pinged"].as_u64() == Some(watched as u64));
    let max_gap = seen
        .iter()
        .flat_map(|s| s.pings.windows(2).map(|w| w[1] - w[0]))
        .max()
        .unwrap_or(0);
    let never_pinged = seen
        .iter()
        .filter(|s| s.pings.is_empty() && !s.closed_early)
        .count();
    let closed = seen.iter().filter(|s| s.closed && !s.closed_early).count();
    let gave_up = seen.iter().filter(|s| s.gave_up).count();
    let per_conn = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if n > 0 => json!((b.saturating_sub(a) as f64) / n as f64),
        _ => serde_json::Value::Null,
    };
    let report = json!({
        "connections": n,
        "failed_to_connect": failed,
        "closed_while_connecting": closed_early,
        "watched": watched,
        "users": users.len(),
        "login_s": logged_in.as_secs_f64(),
        "connect_all_s": connect_all.as_secs_f64(),
        "observe_s": args.observe_secs,
        "schedule_ms": args.schedule_ms,
        "rounds": round_reports,
        "whole_rounds": whole.len(),
        "everyone_pinged_every_whole_round": everyone_every_round,
        "max_gap_between_pings_ms": max_gap,
        "never_pinged": never_pinged,
        "closed_while_watched": closed,
        "gave_up_waiting_for_a_ping": gave_up,
        "server_rss_kib": [server0, server1],
        "db_rss_kib": [db0, db1],
        "server_kib_per_connection": per_conn(server0, server1),
        "db_kib_per_connection": per_conn(db0, db1),
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text)?;
    }
    anyhow::ensure!(
        everyone_every_round && closed == 0 && never_pinged == 0 && failed == 0,
        "not every connection was kept: see the report"
    );
    Ok(())
}
