//! The websocket cases of the official Engine.IO and Socket.IO protocol test suites, written
//! again here with raw frames against the conformance server (the project's own shim behind
//! the local gateway and the scheduler).

use std::time::{Duration, Instant};

use harness::ws::{Frame, RawWs, RawWsExt};
use harness::{mongo_uri, unique_db_name};
use local_gateway::Gateway;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(3);

async fn server() -> Gateway {
    conformance::start(mongo_uri(), &unique_db_name(), 0)
        .await
        .unwrap()
}

async fn open(gw: &Gateway, path: &str) -> (RawWs, Value) {
    let mut ws = RawWs::connect(&format!("ws://{}{path}?EIO=4&transport=websocket", gw.addr))
        .await
        .unwrap();
    let first = ws.text(WAIT).await;
    assert!(first.starts_with('0'), "{first}");
    (ws, serde_json::from_str(&first[1..]).unwrap())
}

/// The next frame that is not an Engine.IO ping (pings are answered), within `WAIT`.
async fn next(ws: &mut RawWs) -> Frame {
    let deadline = Instant::now() + WAIT;
    loop {
        match ws
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Frame::Text(t) if t == "2" => ws.send("3").await,
            other => return other,
        }
    }
}

async fn text(ws: &mut RawWs) -> String {
    match next(ws).await {
        Frame::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

/// Socket.IO connection to `/` as the suite's `initSocketIOConnection` makes it.
async fn sio(gw: &Gateway) -> RawWs {
    let (mut ws, _) = open(gw, "/socket.io/").await;
    ws.send("40").await;
    assert!(text(&mut ws).await.starts_with("40"));
    assert_eq!(text(&mut ws).await, r#"42["auth",{}]"#);
    ws
}

/// The two binary attachments the suites send after a `45x-` / `46x-` header.
const ATTACHMENTS: [[u8; 3]; 2] = [[1, 2, 3], [4, 5, 6]];

async fn send_attachments(ws: &mut RawWs) {
    for a in ATTACHMENTS {
        ws.send_message(Message::Binary(a.to_vec().into()))
            .await
            .unwrap();
    }
}

/// The attachments come back, in order, as binary frames right after their header.
async fn expect_attachments(ws: &mut RawWs) {
    for a in ATTACHMENTS {
        assert_eq!(next(ws).await, Frame::Binary(a.to_vec()));
    }
}

/// The open packet's fields and the suites' settings; `upgrades` as the transport offers.
pub(crate) fn handshake_values(open: &Value, upgrades: &Value) {
    let keys: Vec<&str> = open
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert!(open["sid"].is_string());
    assert_eq!(&open["upgrades"], upgrades);
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
}

#[tokio::test]
async fn handshake_opens_a_session_on_both_paths() {
    let gw = server().await;
    for path in ["/engine.io/", "/socket.io/"] {
        let (_, open) = open(&gw, path).await;
        handshake_values(&open, &json!([]));
    }
}

#[tokio::test]
async fn handshake_refuses_bad_eio_and_transport() {
    let gw = server().await;
    for path in ["/engine.io/", "/socket.io/"] {
        for query in [
            "transport=websocket",
            "EIO=abc&transport=websocket",
            "EIO=4",
            "EIO=4&transport=abc",
        ] {
            let url = format!("ws://{}{path}?{query}", gw.addr);
            match RawWs::connect(&url).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    assert_eq!(resp.status(), 400, "{path}?{query}");
                }
                other => panic!("{path}?{query} was not refused: {:?}", other.map(|_| ())),
            }
        }
    }
}

#[tokio::test]
async fn engine_echoes_text_and_binary() {
    let gw = server().await;
    let (mut ws, _) = open(&gw, "/engine.io/").await;
    ws.send("4hello").await;
    assert_eq!(text(&mut ws).await, "4hello");
    ws.send_message(Message::Binary(vec![1, 2, 3, 4].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await, Frame::Binary(vec![1, 2, 3, 4]));
}

#[tokio::test]
async fn engine_closes_on_invalid_packet_and_on_close_packet() {
    let gw = server().await;
    for (path, bad) in [
        ("/engine.io/", "abc"),
        ("/engine.io/", "1"),
        ("/socket.io/", "1"),
    ] {
        let (mut ws, _) = open(&gw, path).await;
        ws.send(bad).await;
        ws.closed(WAIT).await;
    }
}

#[tokio::test]
async fn heartbeat_pings_every_interval_starting_one_interval_after_open() {
    let gw = server().await;
    for path in ["/engine.io/", "/socket.io/"] {
        // The server's interval starts when it sends the open packet: somewhere between these
        // two instants. So the floor counts from the first, the client's limit from the second.
        let before_open = Instant::now();
        let (mut ws, _) = open(&gw, path).await;
        let mut last = Instant::now();
        let mut floor_from = before_open;
        if path == "/socket.io/" {
            // Socket.IO's connect timeout would close a session that never connects.
            ws.send("40").await;
            ws.text(WAIT).await;
            ws.text(WAIT).await;
        }
        for i in 0..3 {
            assert_eq!(ws.text(WAIT).await, "2", "{path}");
            // From the previous ping's arrival (the open packet's, first): the server pings
            // once per interval, whenever the pong came.
            let gap = last.elapsed();
            let floor_gap = floor_from.elapsed();
            last = Instant::now();
            floor_from = last;
            assert!(
                floor_gap >= Duration::from_millis(if i == 0 { 290 } else { 250 }),
                "{path}: ping after {floor_gap:?}"
            );
            // The client's own limit: it gives up after pingInterval + pingTimeout.
            assert!(
                gap <= Duration::from_millis(300 + 200),
                "{path}: ping after {gap:?}"
            );
            ws.send("3").await;
        }
    }
}

#[tokio::test]
async fn heartbeat_closes_on_ping_timeout() {
    let gw = server().await;
    for path in ["/engine.io/", "/socket.io/"] {
        let (mut ws, _) = open(&gw, path).await;
        let started = Instant::now();
        loop {
            match ws.next(WAIT).await {
                Frame::Text(t) if t == "2" || t.starts_with('4') => continue,
                Frame::Close(_) | Frame::Ended => break,
                other => panic!("{other:?}"),
            }
        }
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(450) && after < Duration::from_millis(1500),
            "{path}: {after:?}"
        );
    }
}

#[tokio::test]
async fn socket_connect_to_namespaces_with_and_without_payload() {
    let gw = server().await;
    for (send, prefix, auth) in [
        ("40", "40", "42[\"auth\",{}]"),
        (
            r#"40{"token":"123"}"#,
            "40",
            r#"42["auth",{"token":"123"}]"#,
        ),
        ("40/custom,", "40/custom,", r#"42/custom,["auth",{}]"#),
        (
            r#"40/custom,{"token":"abc"}"#,
            "40/custom,",
            r#"42/custom,["auth",{"token":"abc"}]"#,
        ),
    ] {
        let (mut ws, _) = open(&gw, "/socket.io/").await;
        ws.send(send).await;
        let answer = text(&mut ws).await;
        let body: Value = serde_json::from_str(
            answer
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{answer}")),
        )
        .unwrap();
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["sid"]
        );
        assert!(body["sid"].is_string());
        assert_eq!(text(&mut ws).await, auth);
    }
}

#[tokio::test]
async fn socket_refuses_unknown_namespaces_and_invalid_handshakes() {
    let gw = server().await;
    let (mut ws, _) = open(&gw, "/socket.io/").await;
    ws.send("40/random").await;
    assert_eq!(
        text(&mut ws).await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
    let (mut ws, _) = open(&gw, "/socket.io/").await;
    ws.send("4abc").await;
    ws.closed(WAIT).await;
}

#[tokio::test]
async fn socket_disconnects() {
    let gw = server().await;
    // Leaving the main namespace keeps the Engine.IO session: the next frame is a ping.
    let mut ws = sio(&gw).await;
    ws.send("41").await;
    assert_eq!(ws.text(WAIT).await, "2");

    let mut ws = sio(&gw).await;
    assert_eq!(ws.text(WAIT).await, "2"); // the first ping
    ws.send("3").await;
    ws.send("40/custom").await;
    assert!(text(&mut ws).await.starts_with("40/custom,"));
    assert_eq!(text(&mut ws).await, r#"42/custom,["auth",{}]"#);
    ws.send("41/custom").await;
    ws.send(r#"42["message","message to main namespace"]"#)
        .await;
    assert_eq!(
        text(&mut ws).await,
        r#"42["message-back","message to main namespace"]"#
    );
}

#[tokio::test]
async fn socket_messages_and_acks() {
    let gw = server().await;
    let mut ws = sio(&gw).await;
    ws.send(r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        text(&mut ws).await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
    ws.send(r#"42456["message-with-ack",1,"2",{"3":[false]}]"#)
        .await;
    assert_eq!(text(&mut ws).await, r#"43456[1,"2",{"3":[false]}]"#);
}

#[tokio::test]
async fn socket_binary_attachments_with_and_without_ack() {
    let gw = server().await;
    let mut ws = sio(&gw).await;
    let placeholders = r#"1,{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}"#;
    ws.send(&format!(r#"452-["message",{placeholders}]"#)).await;
    send_attachments(&mut ws).await;
    assert_eq!(
        text(&mut ws).await,
        format!(r#"452-["message-back",{placeholders}]"#)
    );
    expect_attachments(&mut ws).await;

    ws.send(&format!(r#"452-789["message-with-ack",{placeholders}]"#))
        .await;
    send_attachments(&mut ws).await;
    assert_eq!(text(&mut ws).await, format!(r#"462-789[{placeholders}]"#));
    expect_attachments(&mut ws).await;
}

#[tokio::test]
async fn socket_server_emits_that_expect_acks() {
    let gw = server().await;
    let mut ws = sio(&gw).await;
    ws.send(r#"42["emit-with-ack",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        text(&mut ws).await,
        r#"421["emit-with-ack",1,"2",{"3":[true]}]"#
    );
    ws.send(r#"431[1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        text(&mut ws).await,
        r#"42["emit-with-ack",1,"2",{"3":[true]}]"#
    );

    let data = r#"{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},"test""#;
    let mut ws = sio(&gw).await;
    ws.send(&format!(r#"452-["emit-with-ack",{data}]"#)).await;
    send_attachments(&mut ws).await;
    assert_eq!(
        text(&mut ws).await,
        format!(r#"452-1["emit-with-ack",{data}]"#)
    );
    expect_attachments(&mut ws).await;
    ws.send(&format!("462-1[{data}]")).await;
    send_attachments(&mut ws).await;
    assert_eq!(
        text(&mut ws).await,
        format!(r#"452-["emit-with-ack",{data}]"#)
    );
    expect_attachments(&mut ws).await;
}

#[tokio::test]
async fn socket_closes_on_invalid_formats() {
    let gw = server().await;
    for bad in [
        "4abc",
        "42{}",
        r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#,
    ] {
        let mut ws = sio(&gw).await;
        ws.send(bad).await;
        ws.closed(WAIT).await;
    }
}

#[tokio::test]
async fn socket_connect_timeout() {
    let gw = server().await;
    let (mut ws, _) = open(&gw, "/socket.io/").await;
    let started = Instant::now();
    loop {
        match ws.next(WAIT).await {
            Frame::Text(t) if t == "2" => ws.send("3").await,
            Frame::Close(_) | Frame::Ended => break,
            other => panic!("{other:?}"),
        }
    }
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(950) && after < Duration::from_millis(2000),
        "{after:?}"
    );
}
