//! The protocol runtime driven end to end over the in-memory environment: the cases of the
//! official engine.io-protocol and socket.io-protocol suites (websocket transport), without
//! a database or a gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};

use super::memory::{MemoryEnv, MemoryError, Out};
use super::runtime::{
    self, Authorized, Beat, EngineConfig, Event, Frame, Handshake, Session, SocketApp, SocketIo,
};
use super::suite::SuiteApp;
use crate::domain::ConnectionId;

const CFG: EngineConfig = EngineConfig {
    ping_interval: Duration::from_millis(300),
    ping_timeout: Duration::from_millis(200),
    max_payload: 1_000_000,
    connect_timeout: Duration::from_millis(1000),
    establish_wait: Duration::from_millis(30),
};

type Suite = SuiteApp;

fn id(n: u32) -> ConnectionId {
    ConnectionId::parse(&format!("conn{n}=")).unwrap()
}

/// A connection past its handshake and open packet; returns the open packet's JSON.
async fn opened(env: &MemoryEnv, c: &ConnectionId) -> Value {
    let hs = runtime::handshake(env, c, Some("4"), Some("websocket"))
        .await
        .unwrap();
    assert_eq!(hs, Handshake::Accepted);
    assert_eq!(env.take_opens(), vec![c.clone()]);
    env.establish(c);
    assert!(runtime::open(env, &CFG, c).await.unwrap());
    match env.take(c).as_slice() {
        [Out::Text(open)] => serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap(),
        other => panic!("expected the open packet, got {other:?}"),
    }
}

async fn send(env: &MemoryEnv, app: &Suite, c: &ConnectionId, f: Frame) {
    let state = env.session(c).unwrap_or_default();
    runtime::frame(env, &SocketIo(app), c, &state, f)
        .await
        .unwrap();
}

async fn text(env: &MemoryEnv, app: &Suite, c: &ConnectionId, t: &str) {
    send(env, app, c, Frame::Text(t.to_owned())).await;
}

fn texts(out: Vec<Out>) -> Vec<String> {
    out.into_iter()
        .map(|o| match o {
            Out::Text(t) => t,
            other => panic!("expected text, got {other:?}"),
        })
        .collect()
}

const SUITE: Suite = SuiteApp {
    final_sessions: false,
    tokens: true,
};

#[tokio::test]
async fn handshake_refuses_other_protocols_and_transports() {
    let env = MemoryEnv::new(0);
    let c = id(1);
    assert!(matches!(
        runtime::handshake(&env, &c, Some("3"), Some("websocket"))
            .await
            .unwrap(),
        Handshake::Refused(400, _)
    ));
    assert!(matches!(
        runtime::handshake(&env, &c, Some("4"), Some("polling"))
            .await
            .unwrap(),
        Handshake::Refused(400, _)
    ));
    assert!(env.session(&c).is_none());
}

#[tokio::test]
async fn the_open_packet_goes_out_once_the_connection_exists_and_only_once() {
    let env = MemoryEnv::new(0);
    let c = id(1);
    let open = opened(&env, &c).await;
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
    assert_eq!(open["sid"], env.session(&c).unwrap().eio_sid.as_str());
    // A retried task sends nothing.
    assert!(!runtime::open(&env, &CFG, &c).await.unwrap());
    assert!(env.take(&c).is_empty());
    // A connection that never becomes reachable is forgotten.
    let ghost = id(2);
    runtime::handshake(&env, &ghost, Some("4"), Some("websocket"))
        .await
        .unwrap();
    assert!(!runtime::open(&env, &CFG, &ghost).await.unwrap());
    assert!(env.session(&ghost).is_none());
}

#[tokio::test]
async fn connect_to_namespaces_with_auth() {
    let env = MemoryEnv::new(0);
    let c = id(1);
    opened(&env, &c).await;
    text(&env, &SUITE, &c, "40").await;
    let out = texts(env.take(&c));
    assert!(out[0].starts_with("40{\"sid\":\""), "{out:?}");
    assert_eq!(out[1], r#"42["auth",{}]"#);
    text(&env, &SUITE, &c, r#"40/custom,{"token":"ada"}"#).await;
    let out = texts(env.take(&c));
    assert!(out[0].starts_with("40/custom,{\"sid\":\""), "{out:?}");
    assert_eq!(out[1], r#"42/custom,["auth",{"token":"ada"}]"#);
    text(&env, &SUITE, &c, r#"42/custom,1["whoami"]"#).await;
    assert_eq!(texts(env.take(&c)), vec![r#"43/custom,1["ada"]"#]);
    text(&env, &SUITE, &c, "40/nope,").await;
    assert_eq!(
        texts(env.take(&c)),
        vec![r#"44/nope,{"message":"Invalid namespace"}"#]
    );
    text(&env, &SUITE, &c, r#"40{"token":"bad"}"#).await;
    assert_eq!(texts(env.take(&c)), vec![r#"44{"message":"unauthorized"}"#]);
}

#[tokio::test]
async fn events_acks_and_server_emits_with_acks() {
    let env = MemoryEnv::new(0);
    let c = id(1);
    opened(&env, &c).await;
    text(&env, &SUITE, &c, "40").await;
    env.take(&c);
    text(&env, &SUITE, &c, r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        texts(env.take(&c)),
        vec![r#"42["message-back",1,"2",{"3":[true]}]"#]
    );
    text(&env, &SUITE, &c, r#"4256["message-with-ack",1,"2"]"#).await;
    assert_eq!(texts(env.take(&c)), vec![r#"4356[1,"2"]"#]);
    text(&env, &SUITE, &c, r#"42["emit-with-ack",1]"#).await;
    assert_eq!(texts(env.take(&c)), vec![r#"421["emit-with-ack",1]"#]);
    text(&env, &SUITE, &c, r#"431[2,"3"]"#).await;
    assert_eq!(texts(env.take(&c)), vec![r#"42["emit-with-ack",2,"3"]"#]);
}

#[tokio::test]
async fn binary_attachments_across_frames() {
    let env = MemoryEnv::new(0);
    let c = id(1);
    opened(&env, &c).await;
    text(&env, &SUITE, &c, "40").await;
    env.take(&c);
    text(
        &env,
        &SUITE,
        &c,
        r#"451-["message",{"_placeholder":true,"num":0}]"#,
    )
    .await;
    assert!(env.take(&c).is_empty());
    assert!(env.session(&c).unwrap().partial.is_some());
    send(&env, &SUITE, &c, Frame::Binary(vec![1, 2, 3])).await;
    assert_eq!(
        env.take(&c),
        vec![
            Out::Text(r#"451-["message-back",{"_placeholder":true,"num":0}]"#.into()),
            Out::Binary(vec![1, 2, 3]),
        ]
    );
    assert!(env.session(&c).unwrap().partial.is_none());
    // A binary frame nobody waits for breaks the protocol.
    send(&env, &SUITE, &c, Frame::Binary(vec![9])).await;
    assert_eq!(env.take(&c), vec![Out::Close]);
}

#[tokio::test]
async fn protocol_errors_close_the_connection() {
    for (n, bad) in [
        "",
        "9",
        "4garbage",
        r#"42["connect"]"#,
        r#"42{"not":"an array"}"#,
        r#"42[]"#,
        r#"42/custom,["message"]"#,
    ]
    .into_iter()
    .enumerate()
    {
        let env = MemoryEnv::new(0);
        let c = id(n as u32);
        opened(&env, &c).await;
        text(&env, &SUITE, &c, "40").await;
        env.take(&c);
        text(&env, &SUITE, &c, bad).await;
        let out = env.take(&c);
        assert_eq!(out, vec![Out::Close], "{bad:?} should close");
        assert!(env.session(&c).is_none(), "{bad:?} forgets the session");
    }
}

#[tokio::test]
async fn ping_pong_and_close() {
    let env = MemoryEnv::new(0);
    let c = id(1);
    opened(&env, &c).await;
    text(&env, &SUITE, &c, "2probe").await;
    assert_eq!(texts(env.take(&c)), vec!["3probe"]);
    env.advance(100);
    text(&env, &SUITE, &c, "3").await;
    assert_eq!(env.session(&c).unwrap().last_seen_ms, 100);
    text(&env, &SUITE, &c, "1").await;
    assert_eq!(env.take(&c), vec![Out::Close]);
    assert!(env.session(&c).is_none());
}

#[tokio::test]
async fn heartbeat_pings_each_interval_and_drops_the_silent() {
    let env = MemoryEnv::new(0);
    let (live, silent, lurker) = (id(1), id(2), id(3));
    for c in [&live, &silent, &lurker] {
        opened(&env, c).await;
    }
    for c in [&live, &silent] {
        text(&env, &SUITE, c, "40").await;
        env.take(c);
    }
    assert_eq!(
        runtime::heartbeat(&env, &CFG).await.unwrap(),
        Beat::default()
    );
    env.advance(300);
    assert_eq!(runtime::heartbeat(&env, &CFG).await.unwrap().pinged, 3);
    assert_eq!(texts(env.take(&live)), vec!["2"]);
    text(&env, &SUITE, &live, "3").await;
    env.advance(250);
    // `silent` has not answered for 550 ms > 300 + 200.
    let beat = runtime::heartbeat(&env, &CFG).await.unwrap();
    assert_eq!(
        beat.dropped, 2,
        "the silent one and the one that never sent CONNECT"
    );
    assert!(env.session(&silent).is_none());
    assert!(env.session(&live).is_some());
    assert!(env.session(&lurker).is_none());
}

#[tokio::test]
async fn a_late_heartbeat_pings_instead_of_dropping_and_waits_for_the_answer() {
    let env = MemoryEnv::new(0);
    let c = id(1);
    opened(&env, &c).await;
    text(&env, &SUITE, &c, "40").await;
    env.take(&c);
    // No heartbeat for far longer than interval + timeout: the server's delay, not the
    // client's silence.
    env.advance(5_000);
    let beat = runtime::heartbeat(&env, &CFG).await.unwrap();
    assert_eq!((beat.pinged, beat.dropped), (1, 0));
    assert_eq!(texts(env.take(&c)), vec!["2"]);
    // Unanswered yet: not pinged again while the answer may still come.
    env.advance(150);
    assert_eq!(
        runtime::heartbeat(&env, &CFG).await.unwrap(),
        Beat::default()
    );
    assert!(env.take(&c).is_empty());
    // Answered: pinged again once the interval has passed.
    text(&env, &SUITE, &c, "3").await;
    env.advance(300);
    assert_eq!(runtime::heartbeat(&env, &CFG).await.unwrap().pinged, 1);
    assert_eq!(texts(env.take(&c)), vec!["2"]);
    // Left unanswered past the ping timeout: the session ends.
    env.advance(250);
    assert_eq!(runtime::heartbeat(&env, &CFG).await.unwrap().dropped, 1);
    assert!(env.session(&c).is_none());
}

#[tokio::test]
async fn the_connect_timeout_applies_only_before_the_first_connect() {
    let env = MemoryEnv::new(0);
    let (joined, never) = (id(1), id(2));
    opened(&env, &joined).await;
    opened(&env, &never).await;
    text(&env, &SUITE, &joined, "40").await;
    for _ in 0..4 {
        env.advance(290);
        runtime::heartbeat(&env, &CFG).await.unwrap();
        for c in [&joined, &never] {
            if env.session(c).is_some() {
                text(&env, &SUITE, c, "3").await;
            }
        }
    }
    assert!(env.session(&joined).is_some());
    assert!(
        env.session(&never).is_none(),
        "dropped after the 1 s connect timeout"
    );
}

#[tokio::test]
async fn sessions_outlive_their_namespaces_unless_final() {
    let env = MemoryEnv::new(0);
    let c = id(1);
    opened(&env, &c).await;
    text(&env, &SUITE, &c, r#"40{"token":"ada"}"#).await;
    text(&env, &SUITE, &c, "41").await;
    assert!(env.session(&c).unwrap().namespaces.is_empty());
    // Events need a CONNECT again; a new CONNECT works.
    text(&env, &SUITE, &c, r#"40{"token":"bob"}"#).await;
    env.take(&c);
    text(&env, &SUITE, &c, r#"421["whoami"]"#).await;
    assert_eq!(texts(env.take(&c)), vec![r#"431["bob"]"#]);

    let strict = SuiteApp {
        tokens: true,
        final_sessions: true,
    };
    let c = id(2);
    opened(&env, &c).await;
    text(&env, &strict, &c, r#"40{"token":"ada"}"#).await;
    env.take(&c);
    text(&env, &strict, &c, r#"40{"token":"bob"}"#).await;
    assert_eq!(env.take(&c), vec![Out::Close], "a second CONNECT closes");
    let c = id(3);
    opened(&env, &c).await;
    text(&env, &strict, &c, r#"40{"token":"ada"}"#).await;
    env.take(&c);
    text(&env, &strict, &c, "41").await;
    assert_eq!(env.take(&c), vec![Out::Close], "leaving closes");
    assert!(env.session(&c).is_none());
}

#[tokio::test]
async fn binary_packets_are_refused_where_the_transport_cannot_carry_them() {
    struct TextOnly;
    impl SocketApp<MemoryEnv> for TextOnly {
        fn has_namespace(&self, ns: &str) -> bool {
            ns == "/"
        }
        async fn authorize(
            &self,
            _: &MemoryEnv,
            _: &ConnectionId,
            _: &str,
            _: Option<&Value>,
        ) -> Result<Authorized, MemoryError> {
            Ok(Authorized::Anonymous)
        }
        async fn connected(
            &self,
            _: &MemoryEnv,
            _: &Session,
            _: &str,
            _: Option<Value>,
        ) -> Result<(), MemoryError> {
            Ok(())
        }
        async fn event(&self, _: &MemoryEnv, _: &Session, _: Event) -> Result<(), MemoryError> {
            Ok(())
        }
    }
    let env = MemoryEnv::new(0);
    let c = id(1);
    opened(&env, &c).await;
    let state = env.session(&c).unwrap();
    runtime::frame(
        &env,
        &SocketIo(&TextOnly),
        &c,
        &state,
        Frame::Text("40".into()),
    )
    .await
    .unwrap();
    env.take(&c);
    let state = env.session(&c).unwrap();
    runtime::frame(
        &env,
        &SocketIo(&TextOnly),
        &c,
        &state,
        Frame::Text(r#"451-["x",{"_placeholder":true,"num":0}]"#.into()),
    )
    .await
    .unwrap();
    assert_eq!(env.take(&c), vec![Out::Close]);
}
