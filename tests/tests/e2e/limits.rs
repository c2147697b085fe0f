//! Abuse limits: logging in, per source IP (the gateway passes the caller's address as API
//! Gateway does; `127.0.0.2` is another caller) and per number; each user's send rate; live
//! connections per user.

use std::net::IpAddr;
use std::time::Duration;

use futures::TryStreamExt;
use harness::client::{Api, mobile};
use harness::ws::{RawSio, RawWs, WAIT};
use harness::{EnvOptions, TestEnv};
use serde_json::{Value, json};

fn from(env: &TestEnv, ip: &str) -> Api {
    Api::from_address(env.api.base.clone(), ip.parse::<IpAddr>().unwrap())
}

#[tokio::test]
async fn one_address_cannot_walk_through_many_numbers() {
    let env = TestEnv::with(EnvOptions::default().var("OTP_REQUESTS_PER_IP", "3")).await;
    let a = from(&env, "127.0.0.2");
    for n in 0..3 {
        assert_eq!(a.request_otp(&mobile(960 + n)).await.status, 200);
    }
    let r = a.request_otp(&mobile(963)).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{:?}", r.body);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    // Another address is not affected.
    let b = from(&env, "127.0.0.3");
    assert_eq!(b.request_otp(&mobile(963)).await.status, 200);
}

#[tokio::test]
async fn a_stranger_cannot_lock_a_victim_out() {
    // Production values for the per-number limits.
    let env = TestEnv::start().await;
    let victim = mobile(970);
    let stranger = from(&env, "127.0.0.2");
    for _ in 0..5 {
        assert_eq!(stranger.request_otp(&victim).await.status, 200);
    }
    assert_eq!(stranger.request_otp(&victim).await.code(), "rate_limited");
    // The victim, from their own address, still gets a code and logs in.
    let own = from(&env, "127.0.0.4");
    let user = own.login(&victim).await;
    assert_eq!(user.mobile, victim);
}

#[tokio::test]
async fn one_number_gets_a_bounded_number_of_texts() {
    let env = TestEnv::with(EnvOptions::default().var("OTP_REQUESTS_PER_NUMBER", "4")).await;
    let m = mobile(975);
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        assert_eq!(from(&env, ip).request_otp(&m).await.status, 200);
    }
    let r = from(&env, "127.0.0.6").request_otp(&m).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    assert_eq!(env.gateway.sms.messages(&m).len(), 4);
}

#[tokio::test]
async fn verify_attempts_are_limited_per_address() {
    let env = TestEnv::with(EnvOptions::default().var("VERIFY_ATTEMPTS_PER_IP", "3")).await;
    let a = from(&env, "127.0.0.2");
    for n in 0..3 {
        let m = mobile(980 + n);
        assert_eq!(a.request_otp(&m).await.status, 200);
        assert_eq!(a.verify(&m, "000000").await.code(), "otp_invalid");
    }
    let m = mobile(984);
    let issued = a.request_otp(&m).await;
    let code = a.code(&m, &issued).await;
    let r = a.verify(&m, &code).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{:?}", r.body);
    // The right code from another address works.
    let b = from(&env, "127.0.0.3");
    assert_eq!(b.verify(&m, &code).await.status, 200);
}

#[tokio::test]
async fn a_user_over_the_send_rate_is_refused_and_stays_connected() {
    let env = TestEnv::with(
        EnvOptions::default()
            .var("EVENTS_PER_USER", "3")
            .var("EVENTS_WINDOW_SECS", "30"),
    )
    .await;
    let a = env.api.login(&mobile(990)).await;
    let b = env.api.login(&mobile(991)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (mut sb, _) = RawSio::login(&env.ws_url(""), &b.token).await;
    // Seven sends at once: a bucket of three (refilled one per 10 s) lets exactly three by.
    for i in 1..=7 {
        let m = json!(["send_message", { "to": b.user_id, "text": format!("m{i}") }]);
        sa.send(&format!("42{i}{m}")).await.unwrap();
    }
    let (mut accepted, mut refused) = (0, 0);
    while accepted + refused < 7 {
        let f = sa.frame().await;
        let Some(rest) = f.strip_prefix("43") else {
            continue;
        };
        let body = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        let ack: Vec<Value> = serde_json::from_str(body).unwrap();
        match ack[0]["error"]["code"].as_str() {
            None => accepted += 1,
            Some("rate_limited") => refused += 1,
            Some(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!((accepted, refused), (3, 4));
    // The connection stays: what the partner sends still arrives.
    sb.emit(
        "send_message",
        json!({ "to": a.user_id, "text": "still there?" }),
    )
    .await;
    // (Its own accepted sends come back as `message` echoes first.)
    loop {
        let got = sa.wait_event("message").await;
        if got["from"] == b.user_id.as_str() {
            assert_eq!(got["text"], "still there?");
            break;
        }
        assert_eq!(got["from"], a.user_id.as_str());
    }
}

#[tokio::test]
async fn the_event_bucket_refills_steadily() {
    // Three tokens, one more every 500 ms.
    let env = TestEnv::with(
        EnvOptions::default()
            .var("EVENTS_PER_USER", "3")
            .var("EVENTS_WINDOW_SECS", "1")
            .var("CHAT_EXPERIMENTS", "off"),
    )
    .await;
    let a = env.api.login(&mobile(992)).await;
    let b = env.api.login(&mobile(993)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let typing = json!({ "to": b.user_id, "typing": true });
    let mut results = Vec::new();
    for _ in 0..4 {
        results.push(sa.emit_ack("typing", typing.clone()).await);
    }
    let refused = &results[3][0]["error"];
    assert!(
        results[..3].iter().all(|r| r[0].get("error").is_none()),
        "{results:?}"
    );
    assert_eq!(refused["code"], "rate_limited", "{results:?}");
    // The refusal says when the next token comes; it comes then, not a whole window later.
    let wait = refused["retry_after"].as_u64().expect("retry_after");
    assert!(wait <= 1, "{refused}");
    let started = std::time::Instant::now();
    // Polls: each try is a real send, refused until the token is back.
    loop {
        if sa.emit_ack("typing", typing.clone()).await[0]
            .get("error")
            .is_none()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no token came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn live_connections_per_user_are_capped() {
    let env = TestEnv::with(EnvOptions::default().var("MAX_CONNECTIONS_PER_USER", "2")).await;
    let a = env.api.login(&mobile(995)).await;
    let _one = RawSio::login(&env.ws_url(""), &a.token).await;
    let _two = RawSio::login(&env.ws_url(""), &a.token).await;
    let (_three, answer) = RawSio::connect(&env.ws_url(""), &a.token).await;
    assert!(answer.starts_with("44"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    // Plain-JSON clients are refused at the handshake.
    let refused = RawWs::connect(&env.ws_url(&format!("/?token={}", a.token))).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 429)
        }
        other => panic!("expected a 429 handshake, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn the_connection_cap_holds_when_connections_race() {
    let env = TestEnv::with(EnvOptions::default().var("MAX_CONNECTIONS_PER_USER", "2")).await;
    let a = env.api.login(&mobile(996)).await;
    let url = env.ws_url("");
    let attempts = (0..8).map(|_| RawSio::connect(&url, &a.token));
    let outcomes = futures::future::join_all(attempts).await;
    let (kept, refused): (Vec<_>, Vec<_>) = outcomes
        .into_iter()
        .partition(|(_, answer)| answer.starts_with("40"));
    assert!(kept.len() <= 2, "{} connections kept", kept.len());
    for (_, answer) in &refused {
        assert!(answer.contains("too_many_connections"), "{answer}");
    }
    // The refused ones left nothing behind: once the kept ones are gone, two fit again.
    drop(kept);
    drop(refused);
    harness::eventually("the connections are gone", WAIT, || async {
        env.db
            .collection::<bson::Document>("connections")
            .count_documents(bson::doc! { "user_id": { "$ne": null } })
            .await
            .unwrap()
            == 0
    })
    .await;
    let _one = RawSio::login(&url, &a.token).await;
    let _two = RawSio::login(&url, &a.token).await;
}

#[tokio::test]
async fn first_hits_on_a_limit_at_once_are_each_counted_exactly_once() {
    // Six first hits on a new window at once, limit five: the window counts six, and exactly
    // one hit is over. (This database can answer an upsert that raced another's insert with no
    // document though its write landed; counting it again makes seven.)
    let env = TestEnv::start().await;
    let app = env.app();
    let limit = shared::config::Limit::per(5, 3600);
    for round in 0..150 {
        let key = format!("first-hits-{round}-{}", bson::oid::ObjectId::new().to_hex());
        let answers =
            futures::future::join_all((0..6).map(|_| shared::limits::hit(app, &key, limit))).await;
        let over = answers
            .into_iter()
            .map(|a| a.expect("counted"))
            .filter(Option::is_some)
            .count();
        // One document per window (`<key>@<window start>`); the hits could straddle two.
        let windows: Vec<_> = app
            .store
            .rate_limits
            .find(bson::doc! { "_id": { "$regex": format!("^{key}@") } })
            .await
            .expect("query")
            .try_collect()
            .await
            .expect("read");
        let counted: i64 = windows.iter().map(|w| w.hits).sum();
        assert_eq!(counted, 6, "round {round}: six hits counted");
        if windows.len() == 1 {
            assert_eq!(over, 1, "round {round}: six hits on a limit of five");
        }
    }
}
