//! Connection state recovery, frame by frame: the `pid` in the CONNECT answer, offsets on
//! the events of clients that sent one, the replay of what a device missed (exactly once,
//! in order, then the backlog), the plain-JSON `?resume=`, and the fallback to a new
//! session. (The stock socket.io-client across API Gateway's forced closes is in
//! `tests/node/forced-close/`.)

use std::time::Duration;

use harness::client::mobile;
use harness::ws::{RawSio, RawWs, RawWsExt, WAIT};
use harness::{EnvOptions, TestEnv};
use serde_json::{Value, json};

/// Opens a Socket.IO connection and sends CONNECT with `auth`; the answer's JSON.
async fn connect_with(env: &TestEnv, auth: Value) -> (RawSio, Value) {
    let mut s = RawSio::open(&env.ws_url("")).await;
    s.send(&format!("40{auth}")).await.unwrap();
    let answer = s.frame().await;
    let body = answer
        .strip_prefix("40")
        .unwrap_or_else(|| panic!("CONNECT refused: {answer}"));
    (s, serde_json::from_str(body).unwrap())
}

/// The next event: name, first argument, and the offset if it carried one.
async fn next_event(s: &mut RawSio) -> (String, Value, Option<i64>) {
    let (name, args) = s.0.event(WAIT * 2).await.unwrap();
    let offset = match args.as_slice() {
        [_, Value::String(o)] => Some(o.parse().expect("a numeric offset")),
        [_] => None,
        other => panic!("unexpected arguments {other:?}"),
    };
    (name, args[0].clone(), offset)
}

/// Emits with an ack and waits for it (so what follows is handled after it); the ack must
/// not be an error.
async fn emit_acked(s: &mut RawSio, name: &str, data: Value) -> Value {
    let args = s.emit_ack(name, data).await;
    assert!(args[0].get("error").is_none(), "{name} refused: {args:?}");
    args[0].clone()
}

/// Events until `stop` holds for one (included), skipping nothing.
async fn events_until(
    s: &mut RawSio,
    stop: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value, Option<i64>)> {
    let mut out = Vec::new();
    loop {
        let e = next_event(s).await;
        let done = stop(&e.0, &e.1);
        out.push(e);
        if done {
            return out;
        }
    }
}

#[tokio::test]
async fn connect_answers_carry_a_pid_and_offsets_follow_a_claim() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(1000)).await;
    let b = env.api.login(&mobile(1001)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    // A first connection: a pid, and events without offsets (a client that does not
    // implement recovery, python-socketio say, would take one for an extra argument).
    let (mut first, answer) = connect_with(&env, json!({ "token": b.token })).await;
    let pid = answer["pid"].as_str().expect("a pid").to_owned();
    assert!(answer["sid"].is_string());
    assert_eq!(next_event(&mut first).await.0, "system");
    sa.emit("send_message", json!({ "to": b.user_id, "text": "one" }))
        .await;
    let (name, m, offset) = next_event(&mut first).await;
    assert_eq!(
        (name.as_str(), m["text"].as_str(), offset),
        ("message", Some("one"), None)
    );

    // A client that sends a pid implements recovery: its events carry offsets. An unknown
    // pid gets a new session (another pid, and the welcome).
    let (mut second, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": "0123456789abcdef01234567" }),
    )
    .await;
    let other_pid = answer["pid"].as_str().unwrap().to_owned();
    assert_ne!(other_pid, "0123456789abcdef01234567");
    assert_ne!(other_pid, pid);
    let (name, welcome, _) = next_event(&mut second).await;
    assert_eq!(
        (name.as_str(), welcome["type"].as_str()),
        ("system", Some("welcome"))
    );
    sa.emit("send_message", json!({ "to": b.user_id, "text": "two" }))
        .await;
    let (_, m, offset) = next_event(&mut second).await;
    assert_eq!(m["text"], "two");
    let offset = offset.expect("an offset");
    let (_, m, none) = next_event(&mut first).await;
    assert_eq!((m["text"].as_str(), none), (Some("two"), None));
    // Offsets grow with each event to the user.
    sa.emit("typing", json!({ "to": b.user_id, "typing": true }))
        .await;
    let (name, _, next) = next_event(&mut second).await;
    assert_eq!(name, "typing");
    assert!(next.unwrap() > offset);
}

#[tokio::test]
async fn a_device_that_comes_back_gets_what_it_missed_once_in_order_then_the_backlog() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(1010)).await;
    let b = env.api.login(&mobile(1011)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    // B's phone (recovery-aware) and B's laptop, which stays online.
    let (mut phone, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": "000000000000000000000000" }),
    )
    .await;
    let pid = answer["pid"].as_str().unwrap().to_owned();
    next_event(&mut phone).await; // welcome
    let (mut laptop, _) = RawSio::login(&env.ws_url(""), &b.token).await;

    // B sends one message to A, then A writes back: the phone sees it with an offset.
    phone
        .emit("send_message", json!({ "to": a.user_id, "text": "from b" }))
        .await;
    let mine = events_until(&mut phone, |n, d| n == "message" && d["text"] == "from b").await;
    let mine_id = mine.last().unwrap().1["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sa.emit("send_message", json!({ "to": b.user_id, "text": "seen" }))
        .await;
    let seen = events_until(&mut phone, |n, d| n == "message" && d["text"] == "seen").await;
    let last_seen = seen.last().unwrap().2.expect("an offset");

    // The phone drops (its connection ends); meanwhile A reads B's message, types and
    // writes twice. The laptop gets the messages, so they are delivered, not pending.
    drop(phone);
    harness::eventually("the phone's connection is gone", WAIT, || async {
        harness::count(&env.db, "connections", bson::doc! { "pid": &pid }).await == 0
    })
    .await;
    emit_acked(&mut sa, "read", json!({ "message_id": mine_id })).await;
    emit_acked(
        &mut sa,
        "typing",
        json!({ "to": b.user_id, "typing": true }),
    )
    .await;
    for text in ["while away 1", "while away 2"] {
        emit_acked(
            &mut sa,
            "send_message",
            json!({ "to": b.user_id, "text": text }),
        )
        .await;
    }
    events_until(&mut laptop, |n, d| {
        n == "message" && d["text"] == "while away 2"
    })
    .await;

    // The phone comes back with its pid and offset: the same pid, no welcome, the missed
    // events in the order they happened, each once.
    let (mut phone, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": pid, "offset": last_seen.to_string() }),
    )
    .await;
    assert_eq!(answer["pid"], pid.as_str(), "recovered");
    let replay = events_until(&mut phone, |n, d| {
        n == "message" && d["text"] == "while away 2"
    })
    .await;
    let names: Vec<&str> = replay.iter().map(|e| e.0.as_str()).collect();
    assert!(
        !names.contains(&"system"),
        "no welcome on recovery: {names:?}"
    );
    let offsets: Vec<i64> = replay.iter().map(|e| e.2.expect("offsets")).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(offsets[0] > last_seen);
    let read_at = names
        .iter()
        .position(|n| *n == "read")
        .expect("the read receipt");
    assert_eq!(replay[read_at].1["message_id"], mine_id.as_str());
    // (Phantom typing, an experiment, may add typing events of its own.)
    let typing_at = names.iter().position(|n| *n == "typing").expect("typing");
    let texts: Vec<&str> = replay
        .iter()
        .filter(|e| e.0 == "message")
        .map(|e| e.1["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["while away 1", "while away 2"]);
    let first_message = names.iter().position(|n| *n == "message").unwrap();
    assert!(
        read_at < first_message && typing_at < first_message,
        "{names:?}"
    );

    // Live events go on after the replay, and nothing comes twice.
    sa.emit(
        "send_message",
        json!({ "to": b.user_id, "text": "live again" }),
    )
    .await;
    let after = events_until(&mut phone, |n, d| {
        n == "message" && d["text"] == "live again"
    })
    .await;
    assert!(
        after
            .iter()
            .all(|e| e.0 != "message" || e.1["text"] == "live again"),
        "{after:?}"
    );
}

#[tokio::test]
async fn messages_that_waited_for_every_device_come_after_the_replay() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(1020)).await;
    let b = env.api.login(&mobile(1021)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (mut phone, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": "000000000000000000000000" }),
    )
    .await;
    let pid = answer["pid"].as_str().unwrap().to_owned();
    next_event(&mut phone).await; // welcome
    sa.emit("typing", json!({ "to": b.user_id, "typing": true }))
        .await;
    let (_, _, offset) = next_event(&mut phone).await;
    drop(phone);
    harness::eventually("the phone's connection is gone", WAIT, || async {
        harness::count(&env.db, "connections", bson::doc! { "pid": &pid }).await == 0
    })
    .await;
    // No device of B online: the messages wait (undelivered); typing is logged.
    emit_acked(
        &mut sa,
        "typing",
        json!({ "to": b.user_id, "typing": false }),
    )
    .await;
    for text in ["w1", "w2", "w3"] {
        emit_acked(
            &mut sa,
            "send_message",
            json!({ "to": b.user_id, "text": text }),
        )
        .await;
    }
    harness::eventually("the messages are stored", WAIT, || async {
        harness::count(&env.db, "messages", bson::doc! {}).await == 3
    })
    .await;
    let (mut phone, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": pid, "offset": offset.unwrap().to_string() }),
    )
    .await;
    assert_eq!(answer["pid"], pid.as_str());
    let got = events_until(&mut phone, |n, d| n == "message" && d["text"] == "w3").await;
    let summary: Vec<String> = got
        .iter()
        .map(|(n, d, _)| match n.as_str() {
            "message" => d["text"].as_str().unwrap().to_owned(),
            other => format!("{other}:{}", d["typing"]),
        })
        .collect();
    // The logged typing stop first, then the messages that waited, in order. (Phantom
    // typing, an experiment, may add typing events of its own.)
    let messages: Vec<&String> = summary
        .iter()
        .filter(|s| !s.starts_with("typing"))
        .collect();
    assert_eq!(messages, ["w1", "w2", "w3"], "{summary:?}");
    let stop = summary
        .iter()
        .position(|s| s == "typing:false")
        .expect("the typing stop");
    assert!(
        stop < summary.iter().position(|s| s == "w1").unwrap(),
        "{summary:?}"
    );
    // And A hears they were delivered.
    for _ in 0..3 {
        sa.wait_event("delivered").await;
    }
}

#[tokio::test]
async fn past_the_window_or_with_a_bad_claim_a_client_gets_a_new_session() {
    let env = TestEnv::with(EnvOptions::default().var("RECOVERY_WINDOW_SECS", "1")).await;
    let a = env.api.login(&mobile(1030)).await;
    let b = env.api.login(&mobile(1031)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (mut phone, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": "000000000000000000000000" }),
    )
    .await;
    let pid = answer["pid"].as_str().unwrap().to_owned();
    next_event(&mut phone).await;
    sa.emit("typing", json!({ "to": b.user_id, "typing": true }))
        .await;
    let (_, _, offset) = next_event(&mut phone).await;
    let offset = offset.unwrap().to_string();
    drop(phone);
    // Another user cannot take B's session, whatever the pid.
    let (mut thief, answer) = connect_with(
        &env,
        json!({ "token": a.token, "pid": pid, "offset": offset }),
    )
    .await;
    assert_ne!(answer["pid"], pid.as_str());
    assert_eq!(next_event(&mut thief).await.1["type"], "welcome");
    // A nonsense offset: a new session.
    let (mut s, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": pid, "offset": "banana" }),
    )
    .await;
    assert_ne!(answer["pid"], pid.as_str());
    assert_eq!(next_event(&mut s).await.1["type"], "welcome");
    drop(s);
    // Once the window has passed since the connection ended: a new session, the welcome.
    harness::eventually("the window passes", Duration::from_secs(10), || async {
        harness::count(
            &env.db,
            "recovery_sessions",
            bson::doc! { "_id": &pid, "expires_at": { "$gt": bson::DateTime::now() } },
        )
        .await
            == 0
    })
    .await;
    // Stored (acked) while B is away, so the welcome counts it.
    sa.emit_ack("send_message", json!({ "to": b.user_id, "text": "late" }))
        .await;
    let (mut late, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": pid, "offset": offset }),
    )
    .await;
    assert_ne!(answer["pid"], pid.as_str());
    let (_, welcome, _) = next_event(&mut late).await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["pending"].as_u64()),
        (Some("welcome"), Some(1))
    );
    let (_, m, _) = next_event(&mut late).await;
    assert_eq!(m["text"], "late");
}

#[tokio::test]
async fn plain_json_clients_resume_with_pid_and_offset() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(1040)).await;
    let b = env.api.login(&mobile(1041)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let url = env.ws_url(&format!("/?token={}", b.token));
    let mut j = RawWs::connect(&url).await.unwrap();
    let welcome: Value = serde_json::from_str(&j.text(WAIT).await).unwrap();
    let pid = welcome["data"]["pid"].as_str().unwrap().to_owned();
    sa.emit(
        "send_message",
        json!({ "to": b.user_id, "text": "hi json" }),
    )
    .await;
    let m: Value = serde_json::from_str(&j.text(WAIT).await).unwrap();
    assert_eq!(m["data"]["text"], "hi json");
    let offset = m["offset"].as_str().expect("an offset").to_owned();
    drop(j);
    harness::eventually("the connection is gone", WAIT, || async {
        harness::count(&env.db, "connections", bson::doc! { "pid": &pid }).await == 0
    })
    .await;
    sa.emit("typing", json!({ "to": b.user_id, "typing": true }))
        .await;
    harness::eventually("the typing is logged", WAIT, || async {
        let inbox = format!("inbox:{}", b.user_id);
        let newer = bson::doc! { "_id": inbox, "seq": { "$gt": offset.parse::<i64>().unwrap() } };
        harness::count(&env.db, "locks", newer).await == 1
    })
    .await;
    let mut j = RawWs::connect(&format!("{url}&resume={pid}:{offset}"))
        .await
        .unwrap();
    let welcome: Value = serde_json::from_str(&j.text(WAIT).await).unwrap();
    assert_eq!(welcome["data"]["recovered"], true, "{welcome}");
    assert_eq!(welcome["data"]["pid"], pid.as_str());
    let typing: Value = serde_json::from_str(&j.text(WAIT).await).unwrap();
    assert_eq!(
        (typing["event"].as_str(), typing["data"]["typing"].as_bool()),
        (Some("typing"), Some(true))
    );
    assert!(
        typing["offset"].as_str().unwrap().parse::<i64>().unwrap() > offset.parse::<i64>().unwrap()
    );
    // A resume that cannot be honoured: a new session, said so.
    let mut k = RawWs::connect(&format!("{url}&resume=ffffffffffffffffffffffff:3"))
        .await
        .unwrap();
    let welcome: Value = serde_json::from_str(&k.text(WAIT).await).unwrap();
    assert_eq!(welcome["data"]["recovered"], false);
    assert_ne!(welcome["data"]["pid"], pid.as_str());
}

/// Waits until the connections of session `pid` are gone (its `$disconnect` ran).
async fn connection_gone(env: &TestEnv, pid: &str) {
    harness::eventually("the connection is gone", WAIT, || async {
        harness::count(&env.db, "connections", bson::doc! { "pid": pid }).await == 0
    })
    .await;
}

#[tokio::test]
async fn a_client_further_behind_than_the_log_keeps_gets_a_new_session() {
    let env = TestEnv::with(EnvOptions::default().var("RECOVERY_MAX_EVENTS", "3")).await;
    let a = env.api.login(&mobile(1040)).await;
    let b = env.api.login(&mobile(1041)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let inbox = format!("inbox:{}", b.user_id);
    let claim = json!({ "token": b.token, "pid": "000000000000000000000000" });
    let (mut phone, answer) = connect_with(&env, claim).await;
    let pid = answer["pid"].as_str().unwrap().to_owned();
    next_event(&mut phone).await;
    emit_acked(
        &mut sa,
        "typing",
        json!({ "to": b.user_id, "typing": true }),
    )
    .await;
    let (_, _, offset) = next_event(&mut phone).await;
    let offset = offset.unwrap();
    drop(phone);
    connection_gone(&env, &pid).await;
    let logged_up_to = async |n: i64| {
        harness::eventually("the events are logged", WAIT, || async {
            let head = bson::doc! { "_id": &inbox, "seq": { "$gte": offset + n } };
            harness::count(&env.db, "locks", head).await == 1
        })
        .await;
    };
    // Three events behind: the log still has them all.
    for typing in [false, true, false] {
        emit_acked(
            &mut sa,
            "typing",
            json!({ "to": b.user_id, "typing": typing }),
        )
        .await;
    }
    logged_up_to(3).await;
    let claim = json!({ "token": b.token, "pid": pid, "offset": offset.to_string() });
    let (mut back, answer) = connect_with(&env, claim).await;
    assert_eq!(answer["pid"], pid.as_str(), "3 behind: recovered");
    let mut offsets = Vec::new();
    for _ in 0..3 {
        let (name, _, o) = next_event(&mut back).await;
        assert_eq!(name, "typing");
        offsets.push(o.unwrap());
    }
    assert_eq!(offsets, vec![offset + 1, offset + 2, offset + 3]);
    drop(back);
    connection_gone(&env, &pid).await;
    // Four behind: further than the log keeps, so a new session and its welcome.
    for typing in [true, false, true, false] {
        emit_acked(
            &mut sa,
            "typing",
            json!({ "to": b.user_id, "typing": typing }),
        )
        .await;
    }
    logged_up_to(7).await;
    let claim = json!({ "token": b.token, "pid": pid, "offset": (offset + 3).to_string() });
    let (mut late, answer) = connect_with(&env, claim).await;
    assert_ne!(answer["pid"], pid.as_str(), "4 behind: a new session");
    let (_, welcome, _) = next_event(&mut late).await;
    assert_eq!(welcome["type"], "welcome");
}

#[tokio::test]
async fn a_senders_echo_and_its_delivered_are_logged_together_and_arrive_in_order() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(1050)).await;
    let b = env.api.login(&mobile(1051)).await;
    // A's phone sends; A's laptop watches. Both track offsets.
    let (mut phone, _) = connect_with(
        &env,
        json!({ "token": a.token, "pid": "000000000000000000000001" }),
    )
    .await;
    assert_eq!(next_event(&mut phone).await.0, "system");
    let (mut laptop, _) = connect_with(
        &env,
        json!({ "token": a.token, "pid": "000000000000000000000002" }),
    )
    .await;
    assert_eq!(next_event(&mut laptop).await.0, "system");

    // B is offline: the echo alone.
    let first = emit_acked(
        &mut phone,
        "send_message",
        json!({ "to": b.user_id, "text": "one" }),
    )
    .await;
    let mut echo_at = None;
    for device in [&mut phone, &mut laptop] {
        let (name, m, offset) = next_event(device).await;
        assert_eq!(
            (name.as_str(), &m["message_id"]),
            ("message", &first["message_id"])
        );
        let offset = offset.expect("an offset");
        assert_eq!(*echo_at.get_or_insert(offset), offset);
    }
    let echo_at = echo_at.unwrap();

    // B comes online: `delivered` for it, right after the echo in A's log.
    let (mut sb, _) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(sb.wait_event("message").await["text"], "one");
    for device in [&mut phone, &mut laptop] {
        let (name, d, offset) = next_event(device).await;
        assert_eq!(
            (name.as_str(), &d["message_id"]),
            ("delivered", &first["message_id"])
        );
        assert_eq!(offset, Some(echo_at + 1));
    }

    // B online: the echo, then its `delivered`, on each device, at the next two offsets.
    let second = emit_acked(
        &mut phone,
        "send_message",
        json!({ "to": b.user_id, "text": "two" }),
    )
    .await;
    for device in [&mut phone, &mut laptop] {
        let got: Vec<(String, Value, Option<i64>)> =
            vec![next_event(device).await, next_event(device).await];
        assert_eq!(
            got.iter()
                .map(|(n, v, o)| (n.as_str(), &v["message_id"], *o))
                .collect::<Vec<_>>(),
            vec![
                ("message", &second["message_id"], Some(echo_at + 2)),
                ("delivered", &second["message_id"], Some(echo_at + 3)),
            ]
        );
    }
    assert_eq!(sb.wait_event("message").await["text"], "two");
}

#[tokio::test]
async fn a_send_that_stores_nothing_leaves_no_hole_in_the_log() {
    // A send to an online recipient takes its message's offset with the inbox lease; a retry
    // of an earlier send (same client_id) stores nothing, so that offset goes unused. A
    // device that saw the offset before it recovers over it, and gets what came after.
    // (A message the latency illusion delays takes no offset with the lease: it is off here.)
    let env = TestEnv::with(EnvOptions::default().var("LATENCY_ILLUSION", "off")).await;
    let a = env.api.login(&mobile(1060)).await;
    let b = env.api.login(&mobile(1061)).await;
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let claim = json!({ "token": b.token, "pid": "000000000000000000000000" });
    let (mut phone, answer) = connect_with(&env, claim).await;
    let pid = answer["pid"].as_str().unwrap().to_owned();
    next_event(&mut phone).await; // welcome
    let (mut laptop, _) = RawSio::login(&env.ws_url(""), &b.token).await;
    let first = json!({ "to": b.user_id, "text": "once", "client_id": "retry-1" });
    emit_acked(&mut sa, "send_message", first.clone()).await;
    let seen = events_until(&mut phone, |n, d| n == "message" && d["text"] == "once").await;
    let last_seen = seen.last().unwrap().2.expect("an offset");
    drop(phone);
    connection_gone(&env, &pid).await;

    // The retry, while the laptop keeps B online; then a new message.
    let retried = emit_acked(&mut sa, "send_message", first).await;
    assert_eq!(retried["text"], "once");
    emit_acked(
        &mut sa,
        "send_message",
        json!({ "to": b.user_id, "text": "after the retry" }),
    )
    .await;
    events_until(&mut laptop, |n, d| {
        n == "message" && d["text"] == "after the retry"
    })
    .await;
    let inbox = format!("inbox:{}", b.user_id);
    harness::eventually("the retry's offset is logged as skipped", WAIT, || async {
        let skip =
            bson::doc! { "user": bson::oid::ObjectId::parse_str(&b.user_id).unwrap(), "n": "" };
        harness::count(&env.db, "logged_events", skip).await == 1
    })
    .await;
    let head = bson::doc! { "_id": &inbox, "seq": { "$gte": last_seen + 2 } };
    assert_eq!(harness::count(&env.db, "locks", head).await, 1);

    let (mut phone, answer) = connect_with(
        &env,
        json!({ "token": b.token, "pid": pid, "offset": last_seen.to_string() }),
    )
    .await;
    assert_eq!(
        answer["pid"],
        pid.as_str(),
        "recovered over the skipped offset"
    );
    let replay = events_until(&mut phone, |n, d| {
        n == "message" && d["text"] == "after the retry"
    })
    .await;
    let texts: Vec<&str> = replay
        .iter()
        .filter(|e| e.0 == "message")
        .map(|e| e.1["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["after the retry"], "{replay:?}");
    assert!(replay.iter().all(|e| e.0 != "system"), "{replay:?}");
}
