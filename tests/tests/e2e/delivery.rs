//! The delivery contract under AWS-like conditions (several instances, concurrent frames):
//! backlogs longer than a page, gone connections in the middle of a delivery, the sweep
//! reaching an online recipient whatever offline backlogs exist, and a database restart in
//! the middle of traffic.

use std::time::Duration;

use bson::{doc, oid::ObjectId};
use futures::TryStreamExt;
use harness::client::{User, mobile};
use harness::ws::{RawSio, RawWsExt, WAIT};
use harness::{EnvOptions, TestEnv};
use serde_json::json;
use shared::store::Handback;

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).unwrap()
}

/// An undelivered message document as `chat::store_message` writes it.
fn message(from: ObjectId, to: ObjectId, text: &str, created_ms: i64) -> bson::Document {
    let at = bson::DateTime::from_millis(created_ms);
    let conv = if from.to_hex() < to.to_hex() {
        format!("{}:{}", from.to_hex(), to.to_hex())
    } else {
        format!("{}:{}", to.to_hex(), from.to_hex())
    };
    doc! {
        "_id": ObjectId::new(), "conv": conv, "from": from, "to": to, "text": text,
        "created_at": at, "deliver_after": at, "delivered_at": bson::Bson::Null,
        "read_at": bson::Bson::Null,
    }
}

/// A connection record whose connection API Gateway no longer knows (a missed $disconnect).
fn ghost_connection(id: &str, user: ObjectId) -> bson::Document {
    let now = bson::DateTime::now();
    doc! {
        "_id": id, "protocol": "socketio", "user_id": user,
        "eio_sid": "x", "namespaces": [{ "ns": "/", "sid": "y" }], "connected_at": now,
        "last_seen": now, "last_ping": now, "opened": true, "live": true, "joined_once": true,
        "expires_at": bson::DateTime::from_millis(now.timestamp_millis() + 3_600_000),
    }
}

#[tokio::test]
async fn a_backlog_of_several_pages_arrives_in_order_past_a_gone_connection() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(300)).await;
    let b = env.api.login(&mobile(301)).await;
    let (from, to) = (oid(&a.user_id), oid(&b.user_id));
    let start = bson::DateTime::now().timestamp_millis() - 60_000;
    let backlog: Vec<bson::Document> = (0..250)
        .map(|i| message(from, to, &format!("m{i}"), start + i))
        .collect();
    let messages = env.db.collection::<bson::Document>("messages");
    messages.insert_many(backlog).await.unwrap();
    env.db
        .collection::<bson::Document>("connections")
        .insert_one(ghost_connection("GhostPaging01=", to))
        .await
        .unwrap();
    let (mut sb, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(welcome["pending"], 250);
    for i in 0..250 {
        let m = sb.wait_event("message").await;
        assert_eq!(m["text"], format!("m{i}"));
    }
    harness::eventually("the gone connection's record is deleted", WAIT, || async {
        harness::count(&env.db, "connections", doc! {"_id": "GhostPaging01="}).await == 0
    })
    .await;
    harness::eventually("every message is marked delivered", WAIT, || async {
        harness::count(&env.db, "messages", doc! {"delivered_at": bson::Bson::Null}).await == 0
    })
    .await;
}

#[tokio::test]
async fn the_sweep_reaches_an_online_recipient_behind_thousands_of_offline_backlogs() {
    // Deliveries only through the sweep here: a long schedule period, so "within one sweep"
    // is measured against it.
    let env = TestEnv::with(EnvOptions {
        schedule_every: Duration::from_millis(1500),
        ..EnvOptions::default()
    })
    .await;
    let b = env.api.login(&mobile(310)).await;
    let stranger = ObjectId::new();
    let old = bson::DateTime::now().timestamp_millis() - 120_000;
    // 3,000 overdue messages for 300 users who are not connected.
    let offline: Vec<bson::Document> = (0..3000)
        .map(|i| message(stranger, ObjectId::new(), &format!("o{i}"), old + i))
        .collect();
    env.db
        .collection::<bson::Document>("messages")
        .insert_many(offline)
        .await
        .unwrap();
    let (mut sb, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(welcome["pending"], 0);
    // One message stuck for the online recipient (stored, its push lost).
    env.db
        .collection::<bson::Document>("messages")
        .insert_one(message(stranger, oid(&b.user_id), "stuck", old))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let m = sb.wait_event("message").await;
    assert_eq!(m["text"], "stuck");
    assert!(
        started.elapsed() < Duration::from_millis(1500 + 1000),
        "the stuck message took {:?} (one sweep is 1.5 s)",
        started.elapsed()
    );
    harness::eventually("the stuck message is marked delivered", WAIT, || async {
        harness::count(
            &env.db,
            "messages",
            doc! {"text": "stuck", "delivered_at": bson::Bson::Null},
        )
        .await
            == 0
    })
    .await;
    // The offline backlogs stay for their recipients' next connect.
    assert_eq!(
        harness::count(&env.db, "messages", doc! {"delivered_at": bson::Bson::Null}).await,
        3000
    );
}

#[tokio::test]
async fn a_retried_open_task_sends_no_second_open_packet() {
    let env = TestEnv::start().await;
    let mut s = RawSio::open(&env.ws_url("")).await;
    let sid = s.open["sid"].as_str().unwrap().to_owned();
    let id = env
        .db
        .collection::<bson::Document>("connections")
        .find_one(doc! {"eio_sid": &sid})
        .await
        .unwrap()
        .unwrap()
        .get_str("_id")
        .unwrap()
        .to_owned();
    // Lambda retries a failed async invoke: run the same task again.
    let task = json!({"task": "open", "connection_id": id});
    let report = shared::scheduler::handle(env.app(), task).await.unwrap();
    assert_eq!(report.opened, 0);
    s.auto_pong = true;
    s.ws.send(r#"40{"token":"nope"}"#).await;
    let next = s.frame().await;
    assert!(
        next.starts_with("44"),
        "expected the CONNECT refusal, got {next}"
    );
}

/// The ids of a conversation's messages (up to 200), in strict history order.
async fn strict_history(env: &TestEnv, token: &str, other: &str) -> Vec<String> {
    let h = env
        .api
        .get(
            &format!("/chat/messages/{other}?order=strict&limit=200"),
            Some(token),
        )
        .await;
    h.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Emits `send_message` with ack id `id` and waits (bounded: a hang fails the test) for its
/// ack; other frames on the way are kept in `seen`.
async fn send_acked(
    s: &mut RawSio,
    id: u32,
    body: serde_json::Value,
    seen: &mut Vec<String>,
) -> serde_json::Value {
    s.ws.send(&format!("42{id}{}", json!(["send_message", body])))
        .await;
    let prefix = format!("43{id}");
    loop {
        let f = match s.ws.next(Duration::from_secs(12)).await {
            harness::ws::Frame::Text(t) => t,
            other => panic!("no ack for send {id}: {other:?}; frames meanwhile: {seen:?}"),
        };
        if f == "2" {
            s.ws.send("3").await;
        } else if let Some(rest) = f.strip_prefix(&prefix) {
            let args: Vec<serde_json::Value> = serde_json::from_str(rest).unwrap();
            return args[0].clone();
        } else {
            seen.push(f);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_mid_traffic_loses_nothing_acked() {
    let mut db = harness::DbServer::start();
    let env = TestEnv::with(
        EnvOptions::default()
            .var("MONGO_URI", &db.uri())
            .var("MONGO_TIMEOUT_MS", "1000")
            // Pongs cannot be recorded while the database is away: heartbeats slow enough
            // that the outage is not taken for dead clients.
            .var("PING_INTERVAL_MS", "20000")
            .var("PING_TIMEOUT_MS", "20000"),
    )
    .await;
    let a = env.api.login(&mobile(320)).await;
    let b = env.api.login(&mobile(321)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (sb, _) = RawSio::login(&env.ws_url(""), &b.token).await;
    // B reads everything that arrives, in the background.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let reader = {
        let received = received.clone();
        let mut sb = sb;
        tokio::spawn(async move {
            loop {
                match sb.ws.next(Duration::from_secs(60)).await {
                    harness::ws::Frame::Text(f) if f == "2" => sb.ws.send("3").await,
                    harness::ws::Frame::Text(f) => {
                        if let Some(body) = f.strip_prefix("42") {
                            let v: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
                            if v[0] == "message" {
                                received.lock().unwrap().push(v[1].clone());
                            }
                        }
                    }
                    _ => return,
                }
            }
        })
    };
    let mut seen = Vec::new();
    let mut acked: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut ack_id = 0;
    // A client that retries a refused send with the same client_id, as the README says.
    let mut send = async |i: usize, seen: &mut Vec<String>| -> bool {
        ack_id += 1;
        let body = json!({"to": b.user_id, "text": format!("m{i}"), "client_id": format!("c{i}")});
        let ack = send_acked(&mut sa, ack_id, body, seen).await;
        match ack["message_id"].as_str() {
            Some(id) => {
                if !acked.iter().any(|a| a == id) {
                    acked.push(id.to_owned());
                }
                true
            }
            None => {
                errors.push(ack["error"]["code"].as_str().unwrap_or("?").to_owned());
                false
            }
        }
    };
    for i in 0..20 {
        assert!(send(i, &mut seen).await, "send {i} before the outage");
    }
    db.down();
    // While the database is away: clear errors, not hangs (send_acked bounds each wait).
    let mut refused = 0;
    for i in 20..25 {
        if !send(i, &mut seen).await {
            refused += 1;
        }
    }
    assert!(
        refused >= 4,
        "sends during the outage were refused ({refused} of 5)"
    );
    let me = env.api.get("/users/me", Some(&a.token)).await;
    assert_eq!(
        (me.status, me.code()),
        (503, "unavailable"),
        "{:?}",
        me.body
    );
    db.up();
    // Back: the same client ids again (retries), then new sends, with no restart.
    let started = std::time::Instant::now();
    for i in 20..40 {
        while !send(i, &mut seen).await {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the service did not recover"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        errors.iter().all(|c| c == "unavailable" || c == "busy"),
        "{errors:?}"
    );
    // Every acked message is in history, once, and reaches B once.
    let stored = strict_history(&env, &a.token, &b.user_id).await;
    assert_eq!(stored, acked, "history is exactly what was acked, in order");
    harness::eventually(
        "B received every acked message",
        Duration::from_secs(20),
        || async { received.lock().unwrap().len() >= acked.len() },
    )
    .await;
    let got: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, acked, "B received each acked message once, in order");
    reader.abort();
}

/// A device that reads in the background until its connection closes: the `message`
/// events it got, in order.
fn device(mut s: RawSio) -> Device {
    tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            match s.ws.next(Duration::from_secs(30)).await {
                harness::ws::Frame::Text(f) if f == "2" => s.ws.send("3").await,
                harness::ws::Frame::Text(f) => {
                    if let Some(body) = f.strip_prefix("42") {
                        let v: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
                        if v[0] == "message" {
                            got.push(v[1].clone());
                        }
                    }
                }
                _ => return got,
            }
        }
    })
}

/// Closes every connection of `user` through @connections, as API Gateway does at its
/// 2-hour cap; returns how many.
async fn drop_connections(env: &TestEnv, user: &str) -> usize {
    let ids: Vec<String> = env
        .db
        .collection::<bson::Document>("connections")
        .find(doc! {"user_id": oid(user)})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|d| d.get_str("_id").unwrap().to_owned())
        .collect();
    for id in &ids {
        let id = shared::domain::ConnectionId::parse(id).unwrap();
        env.app().pusher.close(&id).await.unwrap();
    }
    ids.len()
}

type Device = tokio::task::JoinHandle<Vec<serde_json::Value>>;

/// Three devices of one user, connected one after the other.
async fn connect_devices(url: String, token: String) -> Vec<Device> {
    let mut devices = Vec::new();
    for _ in 0..3 {
        let (s, _) = RawSio::login(&url, &token).await;
        devices.push(device(s));
    }
    devices
}

#[tokio::test(flavor = "multi_thread")]
async fn several_devices_through_reconnect_storms_with_the_latency_illusion() {
    let env = TestEnv::with(
        EnvOptions::default()
            .var("CHAT_EXPERIMENTS", "on")
            .var("LATENCY_ILLUSION", "on")
            .var("IDENTITY_DRIFT_RATE", "0")
            .var("CHRONOLOGY_RATE", "0"),
    )
    .await;
    let a = env.api.login(&mobile(330)).await;
    let b = env.api.login(&mobile(331)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let mut generations = vec![connect_devices(env.ws_url(""), b.token.clone()).await];
    let mut seen = Vec::new();
    let total = 90;
    let mut storm: Option<tokio::task::JoinHandle<Vec<Device>>> = None;
    for i in 0..total {
        if i == total - 1
            && let Some(s) = storm.take()
        {
            // The last generation is connected before the last message: each of its
            // devices must get it live (one still connecting when it went out to the others
            // would only find it in the history).
            generations.push(s.await.unwrap());
        }
        let body = json!({"to": b.user_id, "text": format!("m{i}"), "client_id": format!("s{i}")});
        let ack = send_acked(&mut sa, i as u32 + 1, body, &mut seen).await;
        assert!(ack["message_id"].is_string(), "send {i}: {ack}");
        if i == 30 || i == 60 {
            // The storm: API Gateway drops every connection of B at once (as at the 2-hour
            // cap); the devices reconnect while A goes on sending.
            if let Some(s) = storm.take() {
                generations.push(s.await.unwrap());
            }
            assert_eq!(drop_connections(&env, &b.user_id).await, 3);
            storm = Some(tokio::spawn(connect_devices(
                env.ws_url(""),
                b.token.clone(),
            )));
        }
    }
    if let Some(s) = storm.take() {
        generations.push(s.await.unwrap());
    }
    // Let the last deliveries land (the latency illusion), then close the last generation.
    harness::eventually(
        "every message is delivered",
        Duration::from_secs(15),
        || async {
            harness::count(&env.db, "messages", doc! {"delivered_at": bson::Bson::Null}).await == 0
        },
    )
    .await;
    let order = strict_history(&env, &b.token, &a.user_id).await;
    assert_eq!(order.len(), total);
    let last = generations.len() - 1;
    drop_connections(&env, &b.user_id).await;
    let mut union = std::collections::HashSet::new();
    for (g, devices) in generations.into_iter().enumerate() {
        for (d, handle) in devices.into_iter().enumerate() {
            let got: Vec<String> = handle
                .await
                .unwrap()
                .iter()
                .map(|m| m["message_id"].as_str().unwrap().to_owned())
                .collect();
            let positions: Vec<usize> = got
                .iter()
                .map(|id| order.iter().position(|o| o == id).unwrap())
                .collect();
            let mut sorted = positions.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(
                positions, sorted,
                "generation {g} device {d}: in order, no duplicates"
            );
            if g == last {
                assert!(
                    positions.iter().any(|&p| p == total - 1),
                    "generation {g} device {d} got the last message"
                );
            }
            union.extend(got);
        }
    }
    assert_eq!(union.len(), total, "every message reached some device of B");
}

/// An inbox holder slowed down past its lease's ttl (a saturated database) keeps the lease
/// while it runs, thanks to the background renewal; gives it back at once when done, where a
/// renewal still on its way cannot take it back; and learns when the lease was taken from it.
#[tokio::test]
async fn a_slow_holder_keeps_its_lease_and_learns_when_it_is_lost() {
    let env = TestEnv::start().await;
    let store = &env.app().store;
    let ttl = Duration::from_millis(400);
    let key = format!("test:{}", ObjectId::new());
    let lease = store.acquire(&key, ttl, Duration::ZERO).await.unwrap();
    let keep = store.keep_alive(&lease);
    // Another taker, trying for three ttls (polling inside `acquire`), never gets it.
    assert!(
        store.acquire(&key, ttl, ttl * 3).await.is_err(),
        "the lease was taken while its holder ran"
    );
    assert!(!keep.lost());
    drop(keep);
    store.release(lease, Handback::default()).await;
    let next = store.acquire(&key, ttl, Duration::ZERO).await.unwrap();
    let keep = store.keep_alive(&next);
    // Another holder takes it (as after a stall longer than the ttl): the renewal notices.
    store
        .locks
        .update_one(
            doc! { "_id": &key },
            doc! { "$set": { "owner": ObjectId::new() } },
        )
        .await
        .unwrap();
    harness::eventually("the holder learns the lease is lost", WAIT, || async {
        keep.lost()
    })
    .await;
}

/// A delivery's last round is recorded while the inbox lease is given back, and the lease
/// hands the next holder those messages' ids: it counts them as delivered even before their
/// record lands, so it neither counts them in a welcome nor pushes them again. Each holder
/// hands them on until a read of the inbox sees them recorded.
#[tokio::test]
async fn a_last_round_still_being_recorded_is_not_pushed_again_by_the_next_holder() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(310)).await;
    let b = env.api.login(&mobile(311)).await;
    let (from, to) = (oid(&a.user_id), oid(&b.user_id));
    // Pushed by the last holder; its `delivered_at` is still on its way.
    let pushed = message(
        from,
        to,
        "pushed",
        bson::DateTime::now().timestamp_millis() - 1_000,
    );
    let id = pushed.get_object_id("_id").unwrap();
    env.db
        .collection::<bson::Document>("messages")
        .insert_one(pushed)
        .await
        .unwrap();
    let store = &env.app().store;
    let lease = hold_inbox(env.app(), &b.user_id).await;
    let key = format!("inbox:{}", b.user_id);
    let handback = Handback {
        last: None,
        settled: true,
        finishing: vec![id],
        live_at: None,
    };
    store.release(lease, handback).await;
    // The next holder: a device of B going live.
    let (mut first, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(
        welcome["pending"], 0,
        "the message being recorded is not waiting"
    );
    // The holder after it (a second device going live) is handed the id on, since no read
    // saw it recorded yet: still not waiting, not pushed.
    let (mut second, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(welcome["pending"], 0, "handed on while unrecorded");
    // The record lands; a third device's read sees it, and the id is handed on no more.
    env.db
        .collection::<bson::Document>("messages")
        .update_one(
            doc! { "_id": id },
            doc! { "$set": { "delivered_at": bson::DateTime::now() } },
        )
        .await
        .unwrap();
    let (_third, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(welcome["pending"], 0);
    harness::eventually("the id is no longer handed on", WAIT, || async {
        harness::count(&env.db, "locks", doc! { "_id": &key, "finishing": id }).await == 0
    })
    .await;
    // Nothing was pushed to either device: a message sent now is the next thing each gets.
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    sa.emit_ack("send_message", json!({"to": b.user_id, "text": "next"}))
        .await;
    assert_eq!(first.wait_event("message").await["text"], "next");
    assert_eq!(second.wait_event("message").await["text"], "next");
}

/// A send reads the sender's and the recipient's connections before it takes the
/// recipient's inbox. A device that goes live under the inbox while the send waits for it is
/// missing from that list; the lease says a device went live, so the send reads them again
/// and the device gets the message at once (no sweep runs here to deliver it later).
#[tokio::test]
async fn a_device_that_goes_live_while_a_send_waits_for_the_inbox_gets_the_message() {
    let env = env_with_sweep_every(Duration::from_secs(3600)).await;
    let (a, b, mut sa, mut sb) = both_online(&env, 330).await;
    // B's device is not live yet when the send reads connections; the inbox is held, as by
    // the device going live.
    let connections = env.db.collection::<bson::Document>("connections");
    let b_conns = doc! { "user_id": oid(&b.user_id) };
    connections
        .update_many(b_conns.clone(), doc! { "$set": { "live": false } })
        .await
        .unwrap();
    let store = &env.app().store;
    let lease = hold_inbox(env.app(), &b.user_id).await;
    sa.emit(
        "send_message",
        json!({"to": b.user_id, "text": "meanwhile"}),
    )
    .await;
    // The send has been counted against A's rate limit: it reads connections next.
    let bucket = format!("bucket:events:{}", a.user_id);
    harness::eventually("the send has started", WAIT, || async {
        harness::count(&env.db, "rate_limits", doc! { "_id": &bucket }).await == 1
    })
    .await;
    // The device goes live, and the inbox is given back saying so.
    connections
        .update_many(b_conns, doc! { "$set": { "live": true } })
        .await
        .unwrap();
    let handback = Handback {
        live_at: Some(bson::DateTime::now()),
        ..Handback::default()
    };
    store.release(lease, handback).await;
    assert_eq!(sb.wait_event("message").await["text"], "meanwhile");
}

/// Takes `user`'s inbox lease, as a holder delivering to them does.
async fn hold_inbox(app: &shared::App, user: &str) -> shared::store::Lease {
    let key = format!("inbox:{user}");
    app.store
        .acquire(&key, Duration::from_secs(20), WAIT)
        .await
        .unwrap()
}

async fn env_with_sweep_every(period: Duration) -> TestEnv {
    TestEnv::with(EnvOptions {
        schedule_every: period,
        ..EnvOptions::default()
    })
    .await
}

/// Users A and B (mobiles `n` and `n + 1`), each with one device live; B's device found
/// nothing waiting, and going live gave B's inbox lease back settled.
async fn both_online(env: &TestEnv, n: u32) -> (User, User, RawSio, RawSio) {
    let a = env.api.login(&mobile(n)).await;
    let b = env.api.login(&mobile(n + 1)).await;
    let (sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (sb, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(welcome["pending"], 0);
    harness::eventually("b's inbox is settled after going live", WAIT, || async {
        inbox_settled(env, &b.user_id).await
    })
    .await;
    (a, b, sa, sb)
}

/// Whether `user`'s inbox lease was last given back settled (nothing left undelivered).
async fn inbox_settled(env: &TestEnv, user: &str) -> bool {
    env.db
        .collection::<bson::Document>("locks")
        .find_one(doc! { "_id": format!("inbox:{user}") })
        .await
        .unwrap()
        .is_some_and(|l| l.get_bool("settled").unwrap_or(false))
}

#[tokio::test]
async fn a_settled_inbox_skips_the_query_and_the_sweep_still_finds_what_it_did_not_know() {
    let env = env_with_sweep_every(Duration::from_millis(1500)).await;
    let (a, b, mut sa, mut sb) = both_online(&env, 320).await;
    sa.emit_ack("send_message", json!({"to": b.user_id, "text": "first"}))
        .await;
    assert_eq!(sb.wait_event("message").await["text"], "first");
    harness::eventually("b's inbox is settled after the send", WAIT, || async {
        inbox_settled(&env, &b.user_id).await
    })
    .await;
    // A message the settled lease does not know of (as one stored by a holder that stalled
    // past its lease): a send trusts the lease, the sweep queries and delivers it.
    let old = bson::DateTime::now().timestamp_millis() - 30_000;
    env.db
        .collection::<bson::Document>("messages")
        .insert_one(message(oid(&a.user_id), oid(&b.user_id), "unknown", old))
        .await
        .unwrap();
    assert_eq!(sb.wait_event("message").await["text"], "unknown");
    harness::eventually("every message is marked delivered", WAIT, || async {
        harness::count(&env.db, "messages", doc! {"delivered_at": bson::Bson::Null}).await == 0
    })
    .await;
    harness::eventually("b's inbox is settled after the sweep", WAIT, || async {
        inbox_settled(&env, &b.user_id).await
    })
    .await;
    sa.emit_ack("send_message", json!({"to": b.user_id, "text": "after"}))
        .await;
    assert_eq!(sb.wait_event("message").await["text"], "after");
    // A send to an offline recipient leaves the inbox unsettled: the reconnect queries.
    assert_eq!(drop_connections(&env, &b.user_id).await, 1);
    harness::eventually("b's connection is gone", WAIT, || async {
        harness::count(&env.db, "connections", doc! {"user_id": oid(&b.user_id)}).await == 0
    })
    .await;
    sa.emit_ack("send_message", json!({"to": b.user_id, "text": "offline"}))
        .await;
    harness::eventually(
        "b's inbox is unsettled while a message waits",
        WAIT,
        || async { !inbox_settled(&env, &b.user_id).await },
    )
    .await;
    let (mut sb, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(welcome["pending"], 1);
    assert_eq!(sb.wait_event("message").await["text"], "offline");
}

#[tokio::test]
async fn leases_taken_beside_concurrent_log_appends_are_exclusive_and_their_offsets_unique() {
    // Takes of one inbox race each other and the `$inc`s of its user's log head, as a busy
    // recipient's do. Every take must hold the lease alone, hand on what the previous holder
    // gave back, and reserve offsets nobody else gets; none may leave the lease stuck. (This
    // database can answer a concurrent findAndModify with no document, or a stale one.)
    let env = TestEnv::start().await;
    let store = &env.app().store;
    let key = format!("inbox:{}", ObjectId::new().to_hex());
    let holders = std::sync::atomic::AtomicUsize::new(0);
    let takers = (0..3).map(|t| {
        let (key, holders) = (&key, &holders);
        async move {
            let mut got = Vec::new();
            for i in 0..60 {
                let lease = store
                    .acquire_reserving(key, Duration::from_secs(20), WAIT, 1)
                    .await
                    .expect("the lease within the wait");
                assert_eq!(
                    holders.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                // The previous holder's handback arrives whole.
                if let Some(last) = lease.last {
                    assert_eq!(lease.finishing.len(), 1, "finishing handed on with last");
                    assert!(last.timestamp_millis() > 0);
                }
                got.extend(lease.reserved.clone());
                holders.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                let handback = Handback {
                    last: Some(bson::DateTime::from_millis(1 + t * 1000 + i)),
                    settled: true,
                    finishing: vec![ObjectId::new()],
                    live_at: None,
                };
                store.release(lease, handback).await;
            }
            got
        }
    });
    let appenders = (0..2).map(|_| async {
        let mut got = Vec::new();
        for _ in 0..90 {
            got.push(store.advance_counter(&key, 1).await.unwrap());
        }
        got
    });
    let (taken, appended) = futures::join!(
        futures::future::join_all(takers),
        futures::future::join_all(appenders)
    );
    let reserved: Vec<i64> = taken.into_iter().flatten().collect();
    assert_eq!(reserved.len(), 180, "one offset per take");
    let mut all: Vec<i64> = reserved
        .into_iter()
        .chain(appended.into_iter().flatten())
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "an offset was handed out twice");
}

#[tokio::test]
async fn first_advances_of_a_log_head_at_once_leave_no_gap_and_no_repeat() {
    // A log head's first `$inc`s race to create its document; each must get its own offset,
    // and the head must count each once (an offset counted twice is a hole in the log).
    let env = TestEnv::start().await;
    let store = &env.app().store;
    for round in 0..150 {
        let key = format!("inbox:{}", ObjectId::new().to_hex());
        let mut got: Vec<i64> =
            futures::future::join_all((0..6).map(|_| store.advance_counter(&key, 1)))
                .await
                .into_iter()
                .map(|r| r.expect("advanced"))
                .collect();
        got.sort_unstable();
        assert_eq!(got, (1..=6).collect::<Vec<i64>>(), "round {round}");
        assert_eq!(store.counter(&key).await.expect("read"), 6, "round {round}");
    }
}
