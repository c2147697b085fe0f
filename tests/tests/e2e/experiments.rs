//! The seed's experiments through the whole stack, with a fixed `CHAT_RNG_SEED`: each fires
//! at its rate, changes only what clients see, and `CHAT_EXPERIMENTS=off` silences all.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use harness::client::mobile;
use harness::ws::RawSio;
use harness::{EnvOptions, TestEnv, s};
use serde_json::{Value, json};
use shared::chat::{self, NewMessage};
use shared::domain::{MessageText, UserId};

fn on() -> EnvOptions {
    EnvOptions::default()
        .var("CHAT_EXPERIMENTS", "on")
        .var("CHAT_RNG_SEED", "20261126")
        .var("LATENCY_ILLUSION", "off")
        .var("IDENTITY_DRIFT_RATE", "0")
        .var("CHRONOLOGY_RATE", "0")
}

/// `hits` lies within 5 standard deviations of `trials * rate`.
fn within_bounds(hits: usize, trials: usize, rate: f64) -> bool {
    let mean = trials as f64 * rate;
    let sd = (trials as f64 * rate * (1.0 - rate)).sqrt();
    (hits as f64 - mean).abs() <= 5.0 * sd
}

#[tokio::test]
async fn identity_drift_dresses_names_at_its_rate_and_never_ids_or_storage() {
    let env = TestEnv::with(on().var("IDENTITY_DRIFT_RATE", "0.2")).await;
    let u = env.api.login(&mobile(300)).await;
    let renamed = env
        .api
        .send(
            "PATCH",
            "/users/me",
            Some(&u.token),
            Some(json!({"display_name": "Grace Hopper"}).to_string()),
        )
        .await;
    assert_eq!(renamed.status, 200);
    let trials = 400;
    let mut drifted = 0;
    for _ in 0..trials {
        let me = env.api.get("/users/me", Some(&u.token)).await;
        assert_eq!(s(&me.body, "user_id"), u.user_id, "user_id never drifts");
        let name = s(&me.body, "display_name");
        if name != "Grace Hopper" {
            drifted += 1;
            let letters: String = name.chars().filter(|c| c.is_alphabetic()).collect();
            assert!(
                letters.to_lowercase().starts_with("gracehopper"),
                "not a cosmetic variant: {name}"
            );
        }
    }
    assert!(
        within_bounds(drifted, trials, 0.2),
        "{drifted} drifts in {trials}"
    );
    let stored = env
        .db
        .collection::<bson::Document>("users")
        .find_one(bson::doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_str("display_name").unwrap(), "Grace Hopper");
}

#[tokio::test]
async fn experiments_off_means_none_fires() {
    let env = TestEnv::with(
        EnvOptions::default()
            .var("CHAT_EXPERIMENTS", "off")
            .var("IDENTITY_DRIFT_RATE", "1")
            .var("CHRONOLOGY_RATE", "1")
            .var("PHANTOM_TYPING", "on")
            .var("PHANTOM_TYPING_RATE", "1"),
    )
    .await;
    let a = env.api.login(&mobile(310)).await;
    let b = env.api.login(&mobile(311)).await;
    for _ in 0..50 {
        let me = env.api.get("/users/me", Some(&a.token)).await;
        assert_eq!(s(&me.body, "display_name"), a.display_name);
    }
    let ids = seed_close_messages(&env, &a.user_id, &b.user_id, 30).await;
    for _ in 0..20 {
        let page = env
            .api
            .get(&format!("/chat/messages/{}", b.user_id), Some(&a.token))
            .await;
        assert_eq!(page_ids(&page.body), ids);
    }
    // No phantom typing (a and b are partners), and deliveries are immediate.
    let (mut sa, welcome) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (mut sb, welcome_b) = RawSio::login(&env.ws_url(""), &b.token).await;
    for _ in 0..welcome["pending"].as_u64().unwrap() {
        sa.wait_event("message").await;
    }
    // B's backlog arrives, and A hears it was delivered, before the quiet period starts.
    for _ in 0..welcome_b["pending"].as_u64().unwrap() {
        sb.wait_event("message").await;
        sa.wait_event("delivered").await;
    }
    let sent = Instant::now();
    sb.emit("send_message", json!({"to": a.user_id, "text": "now"}))
        .await;
    assert_eq!(sa.wait_event("message").await["text"], "now");
    assert!(
        sent.elapsed() < Duration::from_millis(200),
        "{:?}",
        sent.elapsed()
    );
    let quiet = tokio::time::timeout(Duration::from_millis(1200), sa.event()).await;
    assert!(
        quiet.is_err(),
        "unexpected event with experiments off: {quiet:?}"
    );
}

async fn seed_close_messages(env: &TestEnv, a: &str, b: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let stored = chat::store_message(
            env.app(),
            NewMessage {
                from: UserId::parse(from).unwrap(),
                to: UserId::parse(to).unwrap(),
                text: MessageText::parse(&format!("m{i}")).unwrap(),
                client_id: None,
            },
            shared::time::now(),
            None,
        )
        .await
        .unwrap();
        ids.push(stored.message.id.to_hex());
    }
    ids
}

fn page_ids(body: &serde_json::Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(m, "message_id").to_owned())
        .collect()
}

#[tokio::test]
async fn artistic_chronology_swaps_neighbours_at_its_rate_and_pages_stay_exact() {
    let env = TestEnv::with(on().var("CHRONOLOGY_RATE", "0.3")).await;
    let a = env.api.login(&mobile(320)).await;
    let b = env.api.login(&mobile(321)).await;
    let ids = seed_close_messages(&env, &a.user_id, &b.user_id, 40).await;

    let trials = 200;
    let mut shuffled = 0;
    for _ in 0..trials {
        let page = env
            .api
            .get(&format!("/chat/messages/{}", b.user_id), Some(&a.token))
            .await;
        let got = page_ids(&page.body);
        let mut sorted = got.clone();
        sorted.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(sorted, expected, "nothing lost or duplicated");
        if got != ids {
            shuffled += 1;
            for (pos, id) in got.iter().enumerate() {
                let strict = ids.iter().position(|x| x == id).unwrap();
                assert!(pos.abs_diff(strict) <= 1, "moved more than one place");
            }
        }
    }
    assert!(
        within_bounds(shuffled, trials, 0.3),
        "{shuffled} of {trials}"
    );

    // `?order=strict` is always deterministic.
    for _ in 0..30 {
        let page = env
            .api
            .get(
                &format!("/chat/messages/{}?order=strict", b.user_id),
                Some(&a.token),
            )
            .await;
        assert_eq!(page_ids(&page.body), ids);
    }

    // Paging with cursors while chronology is on: every message exactly once.
    for _ in 0..10 {
        let mut seen: Vec<String> = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut path = format!("/chat/messages/{}?limit=7", b.user_id);
            if let Some(c) = &before {
                path.push_str(&format!("&before={c}"));
            }
            let page = env.api.get(&path, Some(&a.token)).await;
            seen.extend(page_ids(&page.body));
            match page.body["next_before"].as_str() {
                Some(c) => before = Some(c.to_owned()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(seen.len(), ids.len());
        assert_eq!(unique.len(), ids.len());
    }
}

#[tokio::test]
async fn latency_illusion_delays_within_range_and_keeps_order() {
    let env = TestEnv::with(
        on().var("LATENCY_ILLUSION", "on")
            .var("LATENCY_MIN_MS", "40")
            .var("LATENCY_MAX_MS", "250"),
    )
    .await;
    let a = env.api.login(&mobile(330)).await;
    let b = env.api.login(&mobile(331)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (mut sb, _) = RawSio::login(&env.ws_url(""), &b.token).await;

    // One at a time: each delay lies in the range (plus local overhead).
    let mut delays = Vec::new();
    for i in 0..15 {
        let sent = Instant::now();
        sa.emit(
            "send_message",
            json!({"to": b.user_id, "text": format!("solo {i}")}),
        )
        .await;
        let got = sb.wait_event("message").await;
        delays.push(sent.elapsed());
        assert_eq!(got["text"], format!("solo {i}"));
        // `delivered` follows the actual push.
        let d = sa.wait_event("delivered").await;
        assert_eq!(d["message_id"], got["message_id"]);
    }
    for d in &delays {
        assert!(
            *d >= Duration::from_millis(40),
            "{d:?} is under the minimum"
        );
        assert!(
            *d <= Duration::from_millis(250 + 150),
            "{d:?} is over the maximum"
        );
    }
    let spread =
        delays.iter().max().unwrap().as_millis() - delays.iter().min().unwrap().as_millis();
    assert!(spread >= 30, "delays do not vary: {delays:?}");

    // A burst sent without waiting for acks: API Gateway may run the frames concurrently,
    // so storage order decides; with random delays the recipient still sees history's order.
    for i in 0..25 {
        sa.emit(
            "send_message",
            json!({"to": b.user_id, "text": format!("burst {i}")}),
        )
        .await;
    }
    let mut arrived = Vec::new();
    for _ in 0..25 {
        arrived.push(sb.wait_event("message").await["message_id"].clone());
    }
    let page = env
        .api
        .get(
            &format!("/chat/messages/{}?order=strict&limit=25", a.user_id),
            Some(&b.token),
        )
        .await;
    let history: Vec<Value> = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].clone())
        .collect();
    assert_eq!(arrived, history, "burst arrivals follow history's order");
}

#[tokio::test]
async fn phantom_typing_names_only_recent_partners() {
    let env = TestEnv::with(
        on().var("PHANTOM_TYPING", "on")
            .var("PHANTOM_TYPING_RATE", "1")
            .var("PHANTOM_TYPING_MS", "300"),
    )
    .await;
    let a = env.api.login(&mobile(340)).await;
    let partner = env.api.login(&mobile(341)).await;
    let stranger = env.api.login(&mobile(342)).await;
    seed_close_messages(&env, &a.user_id, &partner.user_id, 2).await;
    let _ = &stranger;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let mut starts = 0;
    let mut stops = 0;
    while starts < 3 || stops < 3 {
        let (name, data) = tokio::time::timeout(Duration::from_secs(5), sa.event())
            .await
            .expect("phantom typing");
        if name == "message" {
            continue;
        }
        assert_eq!(name, "typing");
        assert_eq!(
            data["from"],
            partner.user_id.as_str(),
            "only a real partner"
        );
        if data["typing"] == true {
            starts += 1;
        } else {
            stops += 1;
        }
    }
    // A user with no conversations never sees phantoms.
    let (mut ss, _) = RawSio::login(&env.ws_url(""), &stranger.token).await;
    let quiet = tokio::time::timeout(Duration::from_millis(1500), ss.event()).await;
    assert!(quiet.is_err(), "a user without partners saw {quiet:?}");
}
