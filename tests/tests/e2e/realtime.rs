//! The WebSocket side at the protocol level, with raw frames: Engine.IO handshake and
//! heartbeat, Socket.IO CONNECT/acks/errors, AWS limits, @connections and 410 handling,
//! plain-JSON clients.

use std::time::Duration;

use harness::client::mobile;
use harness::ws::{Frame, RawSio, RawWs, RawWsExt, WAIT};
use harness::{EnvOptions, TestEnv};
use serde_json::{Value, json};
use shared::domain::ConnectionId;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn handshake_open_packet_connect_and_welcome() {
    let env = TestEnv::start().await;
    let user = env.api.login(&mobile(100)).await;
    let mut s = RawSio::open(&env.ws_url("")).await;
    assert!(s.open["sid"].as_str().is_some_and(|x| !x.is_empty()));
    assert_eq!(s.open["upgrades"], json!([]));
    assert_eq!(s.open["pingInterval"], 1000);
    assert_eq!(s.open["pingTimeout"], 1000);
    let max = s.open["maxPayload"].as_u64().unwrap();
    assert!(max > 0 && max <= 128 * 1024);
    s.ws.send(&format!(r#"40{{"token":"{}"}}"#, user.token))
        .await;
    let answer = s.frame().await;
    let sid: Value = serde_json::from_str(answer.strip_prefix("40").unwrap()).unwrap();
    assert!(sid["sid"].as_str().is_some_and(|x| !x.is_empty()));
    let (name, welcome) = s.event().await;
    assert_eq!(name, "system");
    assert_eq!(
        welcome,
        json!({"type":"welcome","user_id":user.user_id,"pending":0})
    );
}

#[tokio::test]
async fn connect_refusals() {
    let env = TestEnv::start().await;
    let user = env.api.login(&mobile(101)).await;
    for auth in [
        r#"40{"token":"nope"}"#.to_owned(),
        "40".to_owned(),
        r#"40{"token":5}"#.to_owned(),
    ] {
        let mut s = RawSio::open(&env.ws_url("")).await;
        s.ws.send(&auth).await;
        assert_eq!(s.frame().await, r#"44{"message":"unauthorized"}"#, "{auth}");
        // The connection stays: a retry with a good token works.
        s.ws.send(&format!(r#"40{{"token":"{}"}}"#, user.token))
            .await;
        assert!(s.frame().await.starts_with("40{"));
    }
    let mut s = RawSio::open(&env.ws_url("")).await;
    s.ws.send(&format!(r#"40/admin,{{"token":"{}"}}"#, user.token))
        .await;
    assert_eq!(
        s.frame().await,
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
    // A revoked token is refused too.
    let out = env
        .api
        .send("POST", "/users/auth/logout", Some(&user.token), None)
        .await;
    assert_eq!(out.status, 204);
    let (_, answer) = RawSio::connect(&env.ws_url(""), &user.token).await;
    assert_eq!(answer, r#"44{"message":"unauthorized"}"#);
}

#[tokio::test]
async fn acks_echo_ids_and_errors_keep_the_connection() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(102)).await;
    let b = env.api.login(&mobile(103)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    sa.ws
        .send(&format!(
            r#"4217["send_message",{{"to":"{}","text":"hi","client_id":"k1"}}]"#,
            b.user_id
        ))
        .await;
    let ack = sa.frame().await;
    let args: Vec<Value> =
        serde_json::from_str(ack.strip_prefix("4317").unwrap_or_else(|| panic!("{ack}"))).unwrap();
    assert_eq!(args[0]["text"], "hi");
    assert_eq!(args[0]["to"], b.user_id.as_str());
    assert_eq!(args[0]["client_id"], "k1");
    let echo = sa.wait_event("message").await;
    assert_eq!(echo, args[0]);

    // Unknown event: a system error, and the connection stays.
    sa.ws.send(r#"423["fly",{}]"#).await;
    let err = sa.wait_event("system").await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "unknown_event");
    let ack = sa.frame().await;
    assert!(ack.starts_with("433[{\"error\""), "{ack}");
    // Bad payloads: typed errors.
    for (payload, code) in [
        (json!({"to": b.user_id, "text": ""}), "invalid_text"),
        (json!({"to": "x", "text": "hi"}), "invalid_user_id"),
        (json!({"to": a.user_id, "text": "hi"}), "self_message"),
        (
            json!({"to": shared::domain::UserId::new().to_string(), "text": "hi"}),
            "unknown_user",
        ),
        (json!({"text": "hi"}), "invalid_body"),
        (json!("just a string"), "invalid_body"),
    ] {
        sa.emit("send_message", payload.clone()).await;
        let e = sa.wait_event("system").await;
        assert_eq!(e["code"], code, "{payload}");
    }
    sa.emit(
        "send_message",
        json!({"to": b.user_id, "text": "still here"}),
    )
    .await;
    assert_eq!(sa.wait_event("message").await["text"], "still here");
}

#[tokio::test]
async fn protocol_violations_close_the_connection() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(104)).await;
    for bad in [
        r#"42["connect"]"#,
        r#"42["disconnect",{}]"#,
        r#"42[]"#,
        r#"42{"a":1}"#,
        r#"42[1,2]"#,
        r#"42["x""#,
        "4garbage",
        "9",
        "",
        r#"451-["upload",{"_placeholder":true,"num":0}]"#,
        r#"42/other,["send_message",{}]"#,
    ] {
        let (mut s, _) = RawSio::login(&env.ws_url(""), &a.token).await;
        s.ws.send(bad).await;
        let code = s.ws.closed(WAIT).await;
        assert_eq!(code, Some(1000), "{bad:?}");
    }
    // The records of closed connections are gone.
    harness::eventually("closed connections' records are deleted", WAIT, || async {
        harness::count(&env.db, "connections", bson::doc! {}).await == 0
    })
    .await;
}

#[tokio::test]
async fn heartbeat_keeps_live_clients_and_drops_silent_ones() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(105)).await;
    let (mut live, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (mut mute, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    mute.auto_pong = false;
    // Over ~4 ping intervals the live client sees pings and stays; the mute one is closed.
    let started = std::time::Instant::now();
    let mut pings = 0;
    let mute_closed = tokio::spawn(async move {
        loop {
            match mute.ws.next(Duration::from_secs(6)).await {
                Frame::Text(t) if t == "2" => continue,
                Frame::Close(_) | Frame::Ended => return started.elapsed(),
                other => panic!("mute client got {other:?}"),
            }
        }
    });
    while started.elapsed() < Duration::from_millis(4200) {
        match live.ws.next(Duration::from_millis(300)).await {
            Frame::Text(t) if t == "2" => {
                pings += 1;
                live.ws.send("3").await;
            }
            Frame::Timeout => {}
            other => panic!("live client got {other:?}"),
        }
    }
    assert!(pings >= 3, "only {pings} pings in 4 intervals");
    let closed_after = mute_closed.await.unwrap();
    // Silent for pingInterval + pingTimeout (2 s), noticed by the next sweep.
    assert!(
        closed_after >= Duration::from_millis(1900) && closed_after < Duration::from_secs(4),
        "{closed_after:?}"
    );
    live.emit(
        "typing",
        json!({"to": shared::domain::UserId::new().to_string(), "typing": true}),
    )
    .await;
    assert!(env.gateway.open_connections() >= 1);
}

#[tokio::test]
async fn a_sweep_past_its_bound_is_sharded_and_still_looks_after_everyone() {
    // At most 2 connections per sweep invocation: 6 connections make the scheduled sweep
    // hand ranges of slots to shards (asynchronous invokes of itself).
    let env = TestEnv::with(EnvOptions::default().var("SWEEP_SHARD_MAX", "2")).await;
    let a = env.api.login(&mobile(114)).await;
    let b = env.api.login(&mobile(115)).await;
    let mut socks = Vec::new();
    for token in [&a.token, &b.token, &a.token, &b.token, &a.token, &b.token] {
        socks.push(RawSio::login(&env.ws_url(""), token).await.0);
    }
    // A message to B whose delivery was lost (due 10 s ago, undelivered): the shard that
    // looks after B delivers it, once, to each of B's devices.
    let ten_s_ago = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 10_000);
    let (from, to) = (
        bson::oid::ObjectId::parse_str(&a.user_id).unwrap(),
        bson::oid::ObjectId::parse_str(&b.user_id).unwrap(),
    );
    env.db
        .collection::<bson::Document>("messages")
        .insert_one(bson::doc! {
            "conv": shared::domain::conversation_key(
                &shared::domain::UserId::from_object_id(from),
                &shared::domain::UserId::from_object_id(to),
            ),
            "from": from, "to": to, "text": "overdue",
            "created_at": ten_s_ago, "deliver_after": ten_s_ago,
            "delivered_at": bson::Bson::Null, "read_at": bson::Bson::Null,
        })
        .await
        .unwrap();
    // Over 4 ping intervals every connection is pinged (and stays: it answers).
    let watched = futures::future::join_all(socks.iter_mut().map(|s| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(4000);
        let (mut pings, mut overdue) = (0, 0);
        loop {
            match s.ws.next_until(deadline).await {
                Frame::Text(t) if t == "2" => {
                    pings += 1;
                    s.ws.send("3").await;
                }
                Frame::Text(t) if t.starts_with("42[\"message\"") && t.contains("overdue") => {
                    overdue += 1
                }
                Frame::Text(_) => {}
                Frame::Timeout => return (pings, overdue),
                other => panic!("a swept connection got {other:?}"),
            }
        }
    }))
    .await;
    for (i, (pings, overdue)) in watched.iter().enumerate() {
        assert!(
            *pings >= 3,
            "connection {i}: only {pings} pings in 4 intervals"
        );
        let expected = if i % 2 == 1 { 1 } else { 0 };
        assert_eq!(*overdue, expected, "connection {i}: the overdue message");
    }
    // The heartbeats ran in shards: leases on ranges of slots, not on the whole sweep.
    let shards = harness::count(
        &env.db,
        "locks",
        bson::doc! { "_id": { "$regex": "^sweep:heartbeat:[0-9]+\\.\\.[0-9]+$" } },
    )
    .await;
    assert!(shards >= 2, "{shards} shard leases");
}

#[tokio::test]
async fn first_ping_waits_a_full_interval() {
    let env = TestEnv::start().await;
    let mut s = RawSio::open(&env.ws_url("")).await;
    let opened = std::time::Instant::now();
    assert_eq!(s.ws.text(Duration::from_secs(3)).await, "2");
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "{:?}",
        opened.elapsed()
    );
}

#[tokio::test]
async fn connect_timeout_closes_sessions_that_never_connect() {
    let env = TestEnv::with(EnvOptions::default().var("CONNECT_TIMEOUT_MS", "500")).await;
    let mut s = RawSio::open(&env.ws_url("")).await;
    let started = std::time::Instant::now();
    let code = loop {
        match s.ws.next(Duration::from_secs(3)).await {
            Frame::Text(t) if t == "2" => s.ws.send("3").await,
            Frame::Close(c) => break c,
            Frame::Ended => break None,
            other => panic!("{other:?}"),
        }
    };
    assert!(code.is_none() || code == Some(1000));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn aws_limits_binary_and_oversize_frames() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(106)).await;
    let (mut s, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    s.ws.send_message(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(s.ws.closed(WAIT).await, Some(1003));

    let (mut s, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let big = format!(
        r#"42["send_message",{{"to":"{}","text":"{}"}}]"#,
        a.user_id,
        "x".repeat(33 * 1024)
    );
    let _ = s.ws.send_message(Message::Text(big.into())).await;
    assert_eq!(s.ws.closed(WAIT).await, Some(1009));

    // A frame under 32 KB is fine (and a too-long text is refused politely).
    let (mut s, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    s.emit(
        "send_message",
        json!({"to": a.user_id, "text": "x".repeat(20_000)}),
    )
    .await;
    assert_eq!(s.wait_event("system").await["code"], "invalid_text");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let mut opts = EnvOptions::default();
    opts.limits.idle_timeout = Duration::from_millis(700);
    let env = TestEnv::with(opts).await;
    let a = env.api.login(&mobile(107)).await;
    let mut ws = RawWs::connect(&env.ws_url(&format!("/?token={}", a.token)))
        .await
        .unwrap();
    let welcome: Value = serde_json::from_str(&ws.text(WAIT).await).unwrap();
    assert_eq!(welcome["event"], "system");
    let started = std::time::Instant::now();
    assert_eq!(ws.closed(Duration::from_secs(3)).await, Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn polling_opens_sessions_and_unknown_ones_are_refused() {
    let env = TestEnv::start().await;
    // Long-polling is the HTTP API's: the open packet offers the upgrade.
    let open = reqwest::get(format!(
        "{}/socket.io/?EIO=4&transport=polling",
        env.http_url()
    ))
    .await
    .unwrap();
    assert_eq!(open.status().as_u16(), 200);
    let text = open.text().await.unwrap();
    let packet: Value = serde_json::from_str(text.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(packet["upgrades"], serde_json::json!(["websocket"]));
    // A session nobody opened, and a bad sid, are refused with the JSON error body.
    for sid in ["AAAAAAAAAAAAAAAA", "not.a.sid"] {
        let r = env
            .api
            .get(
                &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "unknown_sid"));
    }
    // Engine.IO v3 clients are refused at the handshake.
    let err = RawWs::connect(&env.ws_url("/socket.io/?EIO=3&transport=websocket")).await;
    assert!(err.is_err());
}

#[tokio::test]
async fn json_clients_connect_with_a_token_and_use_actions() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(108)).await;
    let b = env.api.login(&mobile(109)).await;
    match RawWs::connect(&env.ws_url("/?token=bad")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    assert!(RawWs::connect(&env.ws_url("/")).await.is_err());

    let mut ja = RawWs::connect(&env.ws_url(&format!("/?token={}", a.token)))
        .await
        .unwrap();
    let w: Value = serde_json::from_str(&ja.text(WAIT).await).unwrap();
    let pid = w["data"]["pid"].as_str().expect("a pid").to_owned();
    assert_eq!(
        w,
        json!({"event":"system","data":{
            "type":"welcome","user_id":a.user_id,"pending":0,"pid":pid,"recovered":false
        }})
    );
    let (mut sb, _) = RawSio::login(&env.ws_url(""), &b.token).await;

    ja.send(
        &json!({"action":"send_message","to":b.user_id,"text":"from json","client_id":"j1"})
            .to_string(),
    )
    .await;
    let echo: Value = serde_json::from_str(&ja.text(WAIT).await).unwrap();
    assert_eq!(echo["event"], "message");
    assert_eq!(echo["data"]["text"], "from json");
    let got = sb.wait_event("message").await;
    assert_eq!(got["from"], a.user_id.as_str());
    let delivered: Value = serde_json::from_str(&ja.text(WAIT).await).unwrap();
    assert_eq!(delivered["event"], "delivered");

    sb.emit("send_message", json!({"to": a.user_id, "text": "from sio"}))
        .await;
    let m: Value = serde_json::from_str(&ja.text(WAIT).await).unwrap();
    assert_eq!(
        (m["event"].as_str(), m["data"]["text"].as_str()),
        (Some("message"), Some("from sio"))
    );

    ja.send(&json!({"action":"read","message_id": got["message_id"]}).to_string())
        .await;
    let f: Value = serde_json::from_str(&ja.text(WAIT).await).unwrap();
    assert_eq!(f["event"], "system");
    assert_eq!(f["data"]["code"], "forbidden");
    ja.send(r#"{"action":"dance"}"#).await;
    let f: Value = serde_json::from_str(&ja.text(WAIT).await).unwrap();
    assert_eq!(f["data"]["code"], "unknown_event");
    ja.send("not json").await;
    let f: Value = serde_json::from_str(&ja.text(WAIT).await).unwrap();
    assert_eq!(f["data"]["code"], "malformed_json");
    ja.send(r#"{"action":"typing","to":"nope","typing":true}"#)
        .await;
    let f: Value = serde_json::from_str(&ja.text(WAIT).await).unwrap();
    assert_eq!(f["data"]["code"], "invalid_user_id");
}

#[tokio::test]
async fn gone_connections_lose_nothing() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(110)).await;
    let b = env.api.login(&mobile(111)).await;
    // A record for B whose connection API Gateway no longer knows (e.g. a missed $disconnect).
    let ghost = "GhostConnXYZ12=";
    let now = bson::DateTime::now();
    env.db
        .collection::<bson::Document>("connections")
        .insert_one(bson::doc! {
            "_id": ghost, "protocol": "socketio", "user_id": bson::oid::ObjectId::parse_str(&b.user_id).unwrap(),
            "eio_sid": "x", "namespaces": [{ "ns": "/", "sid": "y" }], "connected_at": now, "last_seen": now,
            "last_ping": now, "opened": true, "live": true, "expires_at": bson::DateTime::from_millis(now.timestamp_millis() + 3_600_000),
        })
        .await
        .unwrap();
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    for i in 0..3 {
        sa.emit(
            "send_message",
            json!({"to": b.user_id, "text": format!("m{i}")}),
        )
        .await;
        sa.wait_event("message").await;
    }
    harness::eventually("410 deletes the record", WAIT, || async {
        harness::count(&env.db, "connections", bson::doc! {"_id": ghost}).await == 0
    })
    .await;
    let undelivered = env
        .db
        .collection::<bson::Document>("messages")
        .count_documents(bson::doc! {"delivered_at": bson::Bson::Null})
        .await
        .unwrap();
    assert_eq!(undelivered, 3);
    let (mut sb, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(welcome["pending"], 3);
    for i in 0..3 {
        assert_eq!(sb.wait_event("message").await["text"], format!("m{i}"));
    }
    for _ in 0..3 {
        sa.wait_event("delivered").await;
    }
}

#[tokio::test]
async fn connections_api_through_the_sdk() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(112)).await;
    let mut ws = RawWs::connect(&env.ws_url(&format!("/?token={}", a.token)))
        .await
        .unwrap();
    ws.text(WAIT).await;
    let conns: Vec<bson::Document> = {
        use futures::TryStreamExt;
        env.db
            .collection::<bson::Document>("connections")
            .find(bson::doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(conns.len(), 1);
    let id = ConnectionId::parse(conns[0].get_str("_id").unwrap()).unwrap();
    assert_eq!(id.as_str().len(), 16);
    let app = env.app();
    app.pusher.post(&id, "hello".into()).await.unwrap();
    assert_eq!(ws.text(WAIT).await, "hello");
    let too_big = "x".repeat(129 * 1024);
    assert!(matches!(
        app.pusher.post(&id, too_big).await,
        Err(shared::error::PushError::PayloadTooLarge)
    ));
    app.pusher.close(&id).await.unwrap();
    assert_eq!(ws.closed(WAIT).await, Some(1000));
    assert!(matches!(
        app.pusher.post(&id, "late".into()).await,
        Err(shared::error::PushError::Gone)
    ));
    // $disconnect removed the record.
    harness::eventually("$disconnect removes the record", WAIT, || async {
        harness::count(&env.db, "connections", bson::doc! {}).await == 0
    })
    .await;
}

#[tokio::test]
async fn a_client_close_is_answered_and_disconnects_at_once() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(113)).await;
    let (mut s, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let started = std::time::Instant::now();
    let bye = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    };
    s.ws.send_message(Message::Close(Some(bye))).await.unwrap();
    let answered = s.ws.closed(Duration::from_secs(3)).await;
    assert_eq!(answered, Some(1000), "the close frame is answered");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let conns = env.db.collection::<bson::Document>("connections");
    while conns.count_documents(bson::doc! {}).await.unwrap() > 0 {
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "$disconnect ran late"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
