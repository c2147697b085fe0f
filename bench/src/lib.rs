//! `chat-load`: drives any server that speaks this product's public API — the REST login
//! flow and the stock Socket.IO protocol (Engine.IO v4 over websocket, `auth: {token}`,
//! `send_message` / `message`) — and measures what users feel.
//!
//! A run logs in N users (request_otp + verify), opens N Socket.IO connections, pairs them
//! into conversations (0↔1, 2↔3, …) and has every user send M messages to their partner, at
//! a target rate or flat out; each sender waits for the ack of its previous message before
//! the next (as a chat client does with `emitWithAck`), so "flat out" is as fast as the
//! server acknowledges, and the order a sender sends in is the order the server stores (a
//! sender that does not wait may have its frames run concurrently by API Gateway, and then
//! storage order decides). Each message carries `<run>:<sender>:<seq>:<µs since start>`
//! as its `client_id`, so the receiving side alone can tell latency (sender's emit to the
//! recipient's `message`), loss, duplicates and reordering per conversation direction.
//! Everything is bounded: a run ends when all messages arrived, or after `--duration`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// REST base URL, e.g. `http://127.0.0.1:8000`.
    pub http: String,
    /// Socket.IO websocket URL, e.g. `ws://127.0.0.1:8000/socket.io/`.
    pub ws: String,
    /// Number of users (and connections); rounded up to an even number.
    pub users: usize,
    /// Messages each user sends.
    pub messages: usize,
    /// Messages per second per user; `None` is flat out.
    pub rate: Option<f64>,
    /// Hard limit on the whole run.
    pub duration: Duration,
    /// Concurrent logins / connects.
    pub concurrency: usize,
}

/// A latency summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// What a run measured (also written as JSON).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub users: usize,
    pub connections: usize,
    pub messages_per_user: usize,
    pub target_rate_per_user: Option<f64>,
    pub login_seconds: f64,
    pub connect_all_seconds: f64,
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub errors: u64,
    /// Sends the server turned away with `busy` (shedding load), retried with the same
    /// `client_id`, as a client should; not errors.
    #[serde(default)]
    pub retried: u64,
    pub send_seconds: f64,
    /// From the first emit to the last delivery.
    pub delivery_seconds: f64,
    pub delivered_per_second: f64,
    pub latency: Latency,
    pub error_samples: Vec<String>,
}

impl Report {
    /// Whether the run kept every promise: nothing lost, duplicated or out of order.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.errors == 0
    }

    pub fn summary(&self) -> String {
        let l = &self.latency;
        format!(
            "users {u} (connections {c}), {m} messages each{rate}\n\
             login {login:.2}s, connect all {conn:.2}s\n\
             sent {sent}, delivered {del}, lost {lost}, duplicated {dup}, reordered {re}, errors {err}, retried {retried}\n\
             throughput {tp:.0} delivered/s over {ds:.2}s (sending took {ss:.2}s)\n\
             send->receive latency ms: p50 {p50:.1}  p90 {p90:.1}  p99 {p99:.1}  max {max:.1}  mean {mean:.1}",
            u = self.users,
            c = self.connections,
            m = self.messages_per_user,
            rate = self
                .target_rate_per_user
                .map_or(", flat out".to_owned(), |r| format!(", {r}/s per user")),
            login = self.login_seconds,
            conn = self.connect_all_seconds,
            sent = self.sent,
            del = self.delivered,
            lost = self.lost,
            dup = self.duplicated,
            re = self.reordered,
            err = self.errors,
            retried = self.retried,
            tp = self.delivered_per_second,
            ds = self.delivery_seconds,
            ss = self.send_seconds,
            p50 = l.p50_ms,
            p90 = l.p90_ms,
            p99 = l.p99_ms,
            max = l.max_ms,
            mean = l.mean_ms,
        )
    }
}

/// Live counters for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    pub phase: AtomicUsize,
    pub logged_in: AtomicUsize,
    pub connected: AtomicUsize,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub errors: AtomicU64,
    pub retried: AtomicU64,
}

impl Progress {
    pub fn line(&self, elapsed: Duration) -> String {
        let phase = ["login", "connect", "chat", "drain", "done"]
            [self.phase.load(Ordering::Relaxed).min(4)];
        format!(
            "[{:6.1}s] {phase:<7} logged in {}  connected {}  sent {}  received {}  errors {}",
            elapsed.as_secs_f64(),
            self.logged_in.load(Ordering::Relaxed),
            self.connected.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

pub use test_client::{Session as User, random_mobile};

/// Logs in a new random user (the shared client's REST login).
pub async fn login(http: &reqwest::Client, base: &str) -> anyhow::Result<User> {
    login_as(http, base, &random_mobile()).await
}

/// Logs in the user of `mobile`.
pub async fn login_as(http: &reqwest::Client, base: &str, mobile: &str) -> anyhow::Result<User> {
    test_client::login(http, base, mobile).await
}

/// `n` random mobile numbers, no two alike: two load users drawn with one number would be
/// one user with two devices, each seeing the other's messages (with 1,000 users that is
/// about one run in two hundred).
pub fn distinct_mobiles(n: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(n);
    std::iter::repeat_with(random_mobile)
        .filter(|m| seen.insert(m.clone()))
        .take(n)
        .collect()
}

/// One received `message`, as the collector sees it.
#[derive(Debug)]
struct Arrival {
    recipient: usize,
    sender: usize,
    seq: usize,
    latency: Duration,
}

enum Event {
    Arrival(Arrival),
    Error(String),
}

pub type Ws = test_client::Stream;

/// Engine.IO open, Socket.IO CONNECT with `auth: {token}` and its answer (the shared
/// client's handshake), as a bare WebSocket for the readers and writers.
pub async fn connect_socket(url: &str, token: &str) -> anyhow::Result<Ws> {
    Ok(
        test_client::Socket::join(url, token, Duration::from_secs(30))
            .await?
            .into_stream(),
    )
}

/// `<run>:<sender>:<seq>:<µs>`
fn parse_client_id(run: &str, id: &str) -> Option<(usize, usize, u64)> {
    let mut parts = id.split(':');
    if parts.next()? != run {
        return None;
    }
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

/// Runs one load test. `progress` is updated as it goes.
pub async fn run(cfg: &LoadConfig, progress: Arc<Progress>) -> anyhow::Result<Report> {
    let users_n = cfg.users.max(2).div_ceil(2) * 2;
    let deadline = Instant::now() + cfg.duration;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.concurrency)
        .build()?;
    let gate = Arc::new(Semaphore::new(cfg.concurrency.max(1)));

    // 1. Log in.
    let started = Instant::now();
    let logins = futures::future::join_all(distinct_mobiles(users_n).into_iter().map(|mobile| {
        let http = http.clone();
        let gate = gate.clone();
        let progress = progress.clone();
        let base = cfg.http.clone();
        async move {
            let _permit = gate.acquire().await?;
            let user = login_as(&http, &base, &mobile).await;
            progress.logged_in.fetch_add(1, Ordering::Relaxed);
            user
        }
    }))
    .await;
    let users: Vec<User> = logins
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("logging in")?;
    let login_seconds = started.elapsed().as_secs_f64();

    // 2. Connect everyone.
    progress.phase.store(1, Ordering::Relaxed);
    let started = Instant::now();
    let sockets = futures::future::join_all(users.iter().map(|u| {
        let gate = gate.clone();
        let progress = progress.clone();
        let url = cfg.ws.clone();
        let token = u.token.clone();
        async move {
            let _permit = gate.acquire().await?;
            let ws = connect_socket(&url, &token).await;
            progress.connected.fetch_add(1, Ordering::Relaxed);
            ws
        }
    }))
    .await;
    let sockets: Vec<Ws> = sockets
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("connecting")?;
    let connect_all_seconds = started.elapsed().as_secs_f64();

    // 3. Readers feed a collector; writers send.
    progress.phase.store(2, Ordering::Relaxed);
    let run_id = format!("r{:08x}", rand::random::<u32>());
    let t0 = Instant::now();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Event>();
    let mut writers = Vec::with_capacity(users_n);
    let mut reader_tasks = Vec::with_capacity(users_n);
    let mut ack_readers = Vec::with_capacity(users_n);
    for (me, ws) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        writers.push(out_tx.clone());
        // An ack's id, and whether the server asked to retry (`busy`).
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<(u64, bool)>();
        ack_readers.push(ack_rx);
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if sink.send(Message::Text(frame.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let events = events_tx.clone();
        let run = run_id.clone();
        let my_id = users[me].user_id.clone();
        reader_tasks.push(tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let text = match frame {
                    Ok(Message::Text(t)) => t,
                    Ok(Message::Close(c)) => {
                        let _ = events.send(Event::Error(format!(
                            "connection {me} closed by the server: {c:?}"
                        )));
                        break;
                    }
                    Err(e) => {
                        let _ = events.send(Event::Error(format!("connection {me} failed: {e}")));
                        break;
                    }
                    Ok(_) => continue,
                };
                let text = text.as_str();
                if text == "2" {
                    let _ = out_tx.send("3".into());
                    continue;
                }
                if let Some(ack) = text.strip_prefix("43") {
                    let digits = ack.bytes().take_while(u8::is_ascii_digit).count();
                    if let Ok(id) = ack[..digits].parse::<u64>() {
                        let args: Value =
                            serde_json::from_str(&ack[digits..]).unwrap_or(Value::Null);
                        let busy = args[0]["error"]["code"] == "busy";
                        if !args[0]["error"].is_null() && !busy {
                            let _ = events.send(Event::Error(args[0]["error"].to_string()));
                        }
                        let _ = ack_tx.send((id, busy));
                    }
                    continue;
                }
                let Some(body) = text.strip_prefix("42") else {
                    continue;
                };
                let Ok(Value::Array(items)) = serde_json::from_str::<Value>(body) else {
                    continue;
                };
                match (items.first().and_then(Value::as_str), items.get(1)) {
                    (Some("message"), Some(m)) if m["to"] == my_id.as_str() => {
                        if let Some((sender, seq, micros)) = m["client_id"]
                            .as_str()
                            .and_then(|c| parse_client_id(&run, c))
                        {
                            let sent_at = t0 + Duration::from_micros(micros);
                            let _ = events.send(Event::Arrival(Arrival {
                                recipient: me,
                                sender,
                                seq,
                                latency: Instant::now().saturating_duration_since(sent_at),
                            }));
                        }
                    }
                    // `busy` comes with the ack too, and the send is retried.
                    (Some("system"), Some(s)) if s["type"] == "error" && s["code"] != "busy" => {
                        let _ = events.send(Event::Error(s.to_string()));
                    }
                    _ => {}
                }
            }
        }));
    }
    drop(events_tx);

    let send_started = Instant::now();
    let senders =
        futures::future::join_all(ack_readers.into_iter().enumerate().map(|(me, mut acks)| {
            let partner = me ^ 1;
            let to = users[partner].user_id.clone();
            let out = writers[me].clone();
            let progress = progress.clone();
            let run = run_id.clone();
            let messages = cfg.messages;
            let gap = cfg
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r));
            async move {
                let mut ack_id = 0u64;
                // Each sender starts at a random phase of its period, so a paced run offers a
                // steady load instead of every user sending in the same instant.
                let mut next = Instant::now()
                    + gap.map_or(Duration::ZERO, |g| g.mul_f64(rand::random::<f64>()));
                for seq in 0..messages {
                    if Instant::now() > deadline {
                        break;
                    }
                    if let Some(gap) = gap {
                        tokio::time::sleep_until(next.into()).await;
                        next += gap;
                    }
                    let micros = t0.elapsed().as_micros() as u64;
                    let payload = json!(["send_message", {
                        "to": to,
                        "text": format!("load message {seq} from {me}"),
                        "client_id": format!("{run}:{me}:{seq}:{micros}"),
                    }]);
                    progress.sent.fetch_add(1, Ordering::Relaxed);
                    // Wait for this send's ack before the next one; a `busy` answer is sent
                    // again (same `client_id`: the server stores it once) after a pause.
                    let mut pause = Duration::from_millis(50);
                    loop {
                        ack_id += 1;
                        if out.send(format!("42{ack_id}{payload}")).is_err() {
                            return;
                        }
                        let busy = loop {
                            match tokio::time::timeout_at(deadline.into(), acks.recv()).await {
                                Ok(Some((id, busy))) if id == ack_id => break busy,
                                Ok(Some(_)) => continue,
                                Ok(None) | Err(_) => return,
                            }
                        };
                        if !busy {
                            break;
                        }
                        progress.retried.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }))
        .await;
    drop(senders);
    let send_seconds = send_started.elapsed().as_secs_f64();
    let sent = progress.sent.load(Ordering::Relaxed);

    // 4. Collect until everything arrived or time is up.
    progress.phase.store(3, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut seen: Vec<Vec<bool>> = vec![vec![false; cfg.messages]; users_n];
    let mut highest: Vec<Option<usize>> = vec![None; users_n];
    let (mut delivered, mut duplicated, mut reordered, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut samples = Vec::new();
    let mut last_arrival = t0;
    while delivered < sent {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(ev)) = tokio::time::timeout(remaining, events_rx.recv()).await else {
            break;
        };
        match ev {
            Event::Error(e) => {
                errors += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if samples.len() < 5 {
                    samples.push(e);
                }
            }
            Event::Arrival(a) => {
                if a.sender >= users_n || a.seq >= cfg.messages || a.recipient != (a.sender ^ 1) {
                    errors += 1;
                    continue;
                }
                if seen[a.sender][a.seq] {
                    duplicated += 1;
                    continue;
                }
                seen[a.sender][a.seq] = true;
                delivered += 1;
                progress.received.fetch_add(1, Ordering::Relaxed);
                if highest[a.sender].is_some_and(|h| a.seq < h) {
                    reordered += 1;
                }
                highest[a.sender] = Some(highest[a.sender].map_or(a.seq, |h| h.max(a.seq)));
                hist.record(a.latency.as_micros().max(1) as u64)?;
                last_arrival = Instant::now();
            }
        }
    }
    // A short grace to catch duplicates that trail the last delivery.
    let grace = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(ev)) = tokio::time::timeout_at(grace, events_rx.recv()).await {
        let Event::Arrival(a) = ev else { continue };
        if a.sender >= users_n || a.seq >= cfg.messages || a.recipient != (a.sender ^ 1) {
            errors += 1;
        } else if seen[a.sender][a.seq] {
            duplicated += 1;
        }
    }
    progress.phase.store(4, Ordering::Relaxed);
    for w in &writers {
        let _ = w.send(String::new());
    }
    drop(writers);
    for r in reader_tasks {
        r.abort();
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let delivery_seconds = last_arrival.saturating_duration_since(t0).as_secs_f64();
    Ok(Report {
        users: users_n,
        connections: users_n,
        messages_per_user: cfg.messages,
        target_rate_per_user: cfg.rate,
        login_seconds,
        connect_all_seconds,
        sent,
        delivered,
        lost: sent.saturating_sub(delivered),
        duplicated,
        reordered,
        errors,
        retried: progress.retried.load(Ordering::Relaxed),
        send_seconds,
        delivery_seconds,
        delivered_per_second: if delivery_seconds > 0.0 {
            delivered as f64 / delivery_seconds
        } else {
            0.0
        },
        latency: if hist.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50_ms: ms(0.5),
                p90_ms: ms(0.9),
                p99_ms: ms(0.99),
                max_ms: hist.max() as f64 / 1000.0,
                mean_ms: hist.mean() / 1000.0,
            }
        },
        error_samples: samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip() {
        assert_eq!(parse_client_id("r1", "r1:3:17:12345"), Some((3, 17, 12345)));
        assert_eq!(parse_client_id("r1", "r2:3:17:12345"), None);
        assert_eq!(parse_client_id("r1", "r1:x:17:1"), None);
        assert_eq!(parse_client_id("r1", "r1:3"), None);
    }

    #[test]
    fn distinct_mobiles_are_distinct_and_valid() {
        let mobiles = distinct_mobiles(5000);
        assert_eq!(mobiles.len(), 5000);
        let unique: std::collections::HashSet<&String> = mobiles.iter().collect();
        assert_eq!(unique.len(), 5000);
        assert!(
            mobiles
                .iter()
                .all(|m| shared::domain::Mobile::parse(m).is_ok())
        );
    }

    #[test]
    fn random_mobiles_are_valid() {
        for _ in 0..200 {
            let m = random_mobile();
            assert!(shared::domain::Mobile::parse(&m).is_ok(), "{m}");
        }
    }

    #[test]
    fn a_report_with_any_loss_is_not_clean() {
        let mut r = Report::default();
        assert!(r.clean());
        r.reordered = 1;
        assert!(!r.clean());
    }
}
