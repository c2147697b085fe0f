//! `bench-roundtrips`: MongoDB round trips per delivered message on the hot path, counted
//! with the driver's command monitoring. Starts a local gateway in-process (experiments
//! off, schedule out of the way) on `MONGO_URI`, logs in two users over REST, connects both
//! with the Socket.IO protocol, warms up, then sends messages one at a time (each waits for
//! its `message` at the recipient and `delivered` at the sender) and divides the commands
//! the server issued by the messages delivered. Prints a JSON report.
//!
//! With `LOAD_USERS` (and `LOAD_MESSAGES`, default 20) it counts under load instead:
//! `chat-load`'s run at those settings against the same in-process gateway, the commands
//! from its first send on, by command and collection (a lease's failed tries show as
//! `findAndModify locks`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::ClientOptions;
use serde_json::json;
use test_client::Socket;

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let uri = std::env::var("MONGO_URI").context("set MONGO_URI")?;
    let n: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let load_users: Option<usize> = std::env::var("LOAD_USERS")
        .ok()
        .and_then(|v| v.parse().ok());
    let by_collection = load_users.is_some();
    let counts: Counts = Arc::default();
    let mut opts = ClientOptions::parse(&uri).await?;
    let sink = counts.clone();
    opts.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
        if let CommandEvent::Started(s) = ev
            && let Ok(mut c) = sink.lock()
        {
            let key = match s.command.get_str(&s.command_name) {
                Ok(coll) if by_collection => format!("{} {coll}", s.command_name),
                _ => s.command_name,
            };
            *c.entry(key).or_default() += 1;
        }
    }));
    let client = mongodb::Client::with_options(opts)?;
    let db = format!("bench_rt_{}", rand::random::<u32>());
    let vars = [
        ("MONGO_URI", uri.as_str()),
        ("MONGO_DB", db.as_str()),
        ("RUN_MIGRATIONS", "1"),
        ("CHAT_EXPERIMENTS", "off"),
        ("EVENTS_PER_USER", "1000000"),
        ("OTP_REQUESTS_PER_IP", "1000000"),
        ("VERIFY_ATTEMPTS_PER_IP", "1000000"),
    ];
    let config = shared::config::Config::from_lookup(|k| {
        vars.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| (*v).to_owned())
    })?;
    let mut options = local_gateway::Options::local(config);
    options.port = 0;
    options.schedule_every = Duration::from_secs(3600);
    options.mongo_client = Some(client.clone());
    // An AWS-like latency on every @connections post (`POST_LATENCY_MS`, default 0).
    options.post_latency = Duration::from_millis(
        std::env::var("POST_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let options_post_latency_ms = options.post_latency.as_millis() as u64;
    let gw = local_gateway::start(options).await?;
    if let Some(users) = load_users {
        let messages = std::env::var("LOAD_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        under_load(&gw, &counts, users, messages).await?;
        client.database(&db).drop().await?;
        gw.stop().await;
        return Ok(());
    }
    let http = reqwest::Client::new();
    let base = gw.http_url();
    let a = chat_load::login(&http, &base).await?;
    let b = chat_load::login(&http, &base).await?;
    let url = format!("{}/socket.io/", gw.ws_url());
    let mut sa = Socket::join(&url, &a.token, WAIT).await?;
    let mut sb = Socket::join(&url, &b.token, WAIT).await?;
    sa.wait_event("system", WAIT).await.context("a's welcome")?;
    sb.wait_event("system", WAIT).await.context("b's welcome")?;

    // Per message: emit -> the recipient's `message`, and emit -> the sender's `delivered`
    // (the end of the handler's critical path), in milliseconds.
    let mut times: Vec<(f64, f64)> = Vec::new();
    let send = async |sa: &mut Socket, sb: &mut Socket, i: usize| -> anyhow::Result<(f64, f64)> {
        let started = std::time::Instant::now();
        let message =
            json!({ "to": b.user_id, "text": format!("rt {i}"), "client_id": format!("rt-{i}") });
        sa.emit("send_message", &message).await?;
        let got = sb
            .wait_event("message", WAIT)
            .await
            .context("b's message")?;
        if got["client_id"] != format!("rt-{i}") {
            bail!("out of order: {got}");
        }
        let received = started.elapsed().as_secs_f64() * 1000.0;
        sa.wait_event("message", WAIT).await.context("a's echo")?;
        sa.wait_event("delivered", WAIT)
            .await
            .context("a's delivered")?;
        Ok((received, started.elapsed().as_secs_f64() * 1000.0))
    };
    // Warm-up: ten messages, and past the second after B's device went live, in which a send
    // reads the connections a second time (`fanout::CLOCK_SKEW`): the steady state follows.
    let joined = std::time::Instant::now();
    let mut warm = 0;
    while warm < 10 || joined.elapsed() < shared::realtime::fanout::CLOCK_SKEW * 3 / 2 {
        send(&mut sa, &mut sb, warm).await?;
        warm += 1;
    }
    counts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clear();
    for i in warm..warm + n {
        times.push(send(&mut sa, &mut sb, i).await?);
    }
    let by_command = counts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let total: u64 = by_command.values().sum();
    let pct = |pick: fn(&(f64, f64)) -> f64, q: f64| {
        let mut v: Vec<f64> = times.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let report = json!({
        "messages_delivered": n,
        "mongo_commands": total,
        "round_trips_per_delivered_message": total as f64 / n as f64,
        "post_latency_ms": options_post_latency_ms,
        "to_recipient_ms": { "p50": pct(|t| t.0, 0.5), "p99": pct(|t| t.0, 0.99) },
        "to_delivered_ms": { "p50": pct(|t| t.1, 0.5), "p99": pct(|t| t.1, 0.99) },
        "by_command": by_command.iter().map(|(k, v)| (k.clone(), json!(*v as f64 / n as f64))).collect::<serde_json::Map<_, _>>(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    client.database(&db).drop().await?;
    gw.stop().await;
    Ok(())
}

/// The commands of a `chat-load` run (from its first send on), per delivered message.
async fn under_load(
    gw: &local_gateway::Gateway,
    counts: &Counts,
    users: usize,
    messages: usize,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    let progress = Arc::new(chat_load::Progress::default());
    let cfg = chat_load::LoadConfig {
        http: gw.http_url(),
        ws: format!("{}/socket.io/", gw.ws_url()),
        users,
        messages,
        rate: None,
        duration: Duration::from_secs(300),
        concurrency: 32,
    };
    // Logins and connects are not counted: the counts start with the chat phase.
    let watch = {
        let (progress, counts) = (progress.clone(), counts.clone());
        tokio::spawn(async move {
            while progress.phase.load(Ordering::Relaxed) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if let Ok(mut c) = counts.lock() {
                c.clear();
            }
        })
    };
    let report = chat_load::run(&cfg, progress).await?;
    watch.await?;
    let by = counts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let n = report.delivered.max(1) as f64;
    let total: u64 = by.values().sum();
    let out = json!({
        "users": report.users,
        "messages_delivered": report.delivered,
        "lost": report.lost,
        "duplicated": report.duplicated,
        "reordered": report.reordered,
        "errors": report.errors,
        "delivered_per_second": report.delivered_per_second,
        "commands_per_delivered_message": total as f64 / n,
        "by_command": by
            .iter()
            .map(|(k, v)| (k.clone(), json!(((*v as f64 / n) * 100.0).round() / 100.0)))
            .collect::<serde_json::Map<_, _>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
