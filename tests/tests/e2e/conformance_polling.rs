//! The HTTP long-polling and upgrade cases of the official Engine.IO and Socket.IO protocol
//! test suites (their Engine.IO part runs on both `/engine.io/` and `/socket.io/`), written
//! again here against the conformance server, whose polling goes through the local gateway's
//! HTTP API to the same functions' code.

use std::time::{Duration, Instant};

use harness::ws::{Frame, RawWs, RawWsExt};
use harness::{mongo_uri, unique_db_name};
use local_gateway::Gateway;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(3);
const PATHS: [&str; 2] = ["/engine.io/", "/socket.io/"];

struct Server {
    gw: Gateway,
    db: mongodb::Database,
}

impl std::ops::Deref for Server {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.gw
    }
}

async fn server() -> Server {
    let name = unique_db_name();
    let gw = conformance::start(mongo_uri(), &name, 0).await.unwrap();
    let db = mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&name);
    Server { gw, db }
}

/// Waits until a `GET` of session `sid` is pending (it holds the session's poll lease).
async fn poll_pending(server: &Server, sid: &str) {
    let deadline = Instant::now() + WAIT;
    let filter = bson::doc! { "_id": format!("poll.{sid}"), "poll_until": { "$exists": true } };
    while harness::count(&server.db, "connections", filter.clone()).await == 0 {
        assert!(Instant::now() < deadline, "no poll pending after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A WebSocket opened with a polling session's `sid` (the upgrade's first step).
async fn ws_with_sid(gw: &Gateway, path: &str, sid: &str) -> RawWs {
    RawWs::connect(&format!(
        "ws://{}{path}?EIO=4&transport=websocket&sid={sid}",
        gw.addr
    ))
    .await
    .unwrap()
}

fn url(gw: &Gateway, path: &str, query: &str) -> String {
    format!("http://{}{path}?{query}", gw.addr)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT * 10)
        .build()
        .unwrap()
}

async fn get(gw: &Gateway, path: &str, query: &str) -> (u16, String) {
    let resp = client().get(url(gw, path, query)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn post(gw: &Gateway, path: &str, query: &str, body: &str) -> (u16, String) {
    let resp = client()
        .post(url(gw, path, query))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The suites' `initLongPollingSession`: the open packet's sid.
async fn session(gw: &Gateway, path: &str) -> String {
    let (status, body) = get(gw, path, "EIO=4&transport=polling").await;
    assert_eq!(status, 200, "{body}");
    let open: Value = serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
    open["sid"].as_str().unwrap().to_owned()
}

fn q(sid: &str) -> String {
    format!("EIO=4&transport=polling&sid={sid}")
}

#[tokio::test]
async fn polling_handshake_opens_a_session_offering_the_upgrade() {
    let gw = server().await;
    for path in PATHS {
        let (status, body) = get(&gw, path, "EIO=4&transport=polling").await;
        assert_eq!(status, 200);
        let open: Value = serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
        crate::conformance::handshake_values(&open, &serde_json::json!(["websocket"]));
    }
}

#[tokio::test]
async fn polling_handshake_refuses_bad_eio_transport_and_method() {
    let gw = server().await;
    for path in PATHS {
        for query in [
            "transport=polling",
            "EIO=abc&transport=polling",
            "EIO=4",
            "EIO=4&transport=abc",
        ] {
            assert_eq!(get(&gw, path, query).await.0, 400, "{path}?{query}");
        }
        assert_eq!(post(&gw, path, "EIO=4&transport=polling", "").await.0, 400);
        let put = client()
            .put(url(&gw, path, "EIO=4&transport=polling"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 400);
    }
}

#[tokio::test]
async fn polling_payloads_carry_text_and_binary_packets_both_ways() {
    let gw = server().await;
    for body in [
        "4hello",
        "4test1\u{1e}4test2\u{1e}4test3",
        "4hello\u{1e}bAQIDBA==",
    ] {
        let sid = session(&gw, "/engine.io/").await;
        assert_eq!(
            post(&gw, "/engine.io/", &q(&sid), body).await,
            (200, "ok".to_owned())
        );
        assert_eq!(
            get(&gw, "/engine.io/", &q(&sid)).await,
            (200, body.to_owned())
        );
    }
}

#[tokio::test]
async fn polling_closes_the_session_on_an_invalid_packet() {
    let gw = server().await;
    for path in PATHS {
        let sid = session(&gw, path).await;
        assert_eq!(post(&gw, path, &q(&sid), "abc").await.0, 400);
        assert_eq!(get(&gw, path, &q(&sid)).await.0, 400);
    }
}

#[tokio::test]
async fn polling_closes_the_session_on_duplicate_and_cancelled_polls() {
    let gw = server().await;
    let sid = session(&gw, "/engine.io/").await;
    let query = q(&sid);
    let first = get(&gw, "/engine.io/", &query);
    let second = async {
        poll_pending(&gw, &sid).await;
        get(&gw, "/engine.io/", &format!("{}&t=burst", q(&sid))).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first, (200, "1".to_owned()));
    assert_eq!(second.0, 400);
    assert_eq!(get(&gw, "/engine.io/", &q(&sid)).await.0, 400);

    // A poll the client gave up on still holds the session: the next one ends it.
    let sid = session(&gw, "/engine.io/").await;
    let abandoned = tokio::spawn({
        let u = url(&gw, "/engine.io/", &q(&sid));
        async move {
            let _ = reqwest::Client::builder()
                .timeout(Duration::from_millis(5))
                .build()
                .unwrap()
                .get(u)
                .send()
                .await;
        }
    });
    abandoned.await.unwrap();
    assert_eq!(get(&gw, "/engine.io/", &q(&sid)).await.0, 400);
}

#[tokio::test]
async fn polling_heartbeat_pings_and_times_out() {
    let gw = server().await;
    for path in PATHS {
        let sid = session(&gw, path).await;
        for _ in 0..3 {
            let started = Instant::now();
            assert_eq!(get(&gw, path, &q(&sid)).await, (200, "2".to_owned()));
            // The ping comes when due, not at once (one interval, 300 ms).
            assert!(started.elapsed() >= Duration::from_millis(150));
            assert_eq!(post(&gw, path, &q(&sid), "3").await.0, 200);
        }
        // A client that never answers the pings: within interval + timeout (and a margin)
        // its next poll is refused.
        let sid = session(&gw, path).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = get(&gw, path, &q(&sid)).await;
            if status == 400 {
                break;
            }
            if body == "1" {
                // The server's heartbeat closed it first: the next poll is refused.
                assert_eq!(get(&gw, path, &q(&sid)).await.0, 400);
                break;
            }
            assert_eq!((status, body.as_str()), (200, "2"));
            assert!(Instant::now() < deadline, "still polling after {WAIT:?}");
        }
    }
}

#[tokio::test]
async fn polling_close_packet_ends_a_pending_poll_with_a_noop() {
    let gw = server().await;
    for path in PATHS {
        let sid = session(&gw, path).await;
        let query = q(&sid);
        let (polled, closed) = tokio::join!(get(&gw, path, &query), async {
            poll_pending(&gw, &sid).await;
            post(&gw, path, &q(&sid), "1").await
        });
        assert_eq!(closed.0, 200);
        assert_eq!(polled, (200, "6".to_owned()));
        assert_eq!(get(&gw, path, &q(&sid)).await.0, 400);
    }
}

async fn probe(gw: &Gateway, path: &str, sid: &str) -> RawWs {
    let mut ws = ws_with_sid(gw, path, sid).await;
    ws.send("2probe").await;
    assert_eq!(ws.text(WAIT).await, "3probe");
    ws
}

/// The next text frame that is not a ping.
async fn text(ws: &mut RawWs) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        match ws
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Frame::Text(t) if t == "2" => ws.send("3").await,
            Frame::Text(t) => return t,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn upgrade_moves_the_session_to_the_websocket() {
    let gw = server().await;
    for path in PATHS {
        let sid = session(&gw, path).await;
        let mut ws = probe(&gw, path, &sid).await;
        assert_eq!(get(&gw, path, &q(&sid)).await, (200, "6".to_owned()));
        ws.send("5").await;
        if path == "/engine.io/" {
            ws.send("4hello").await;
            assert_eq!(text(&mut ws).await, "4hello");
        } else {
            // The Socket.IO layer runs on the upgraded session.
            ws.send("40").await;
            assert!(text(&mut ws).await.starts_with("40"));
        }
    }
}

#[tokio::test]
async fn upgrade_ends_a_pending_poll_and_keeps_queued_packets() {
    let gw = server().await;
    let sid = session(&gw, "/engine.io/").await;
    // A poll is pending when the probe arrives: it ends with a noop.
    let pending = tokio::spawn({
        let u = url(&gw, "/engine.io/", &q(&sid));
        async move {
            let r = client().get(u).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    poll_pending(&gw, &sid).await;
    let mut ws = probe(&gw, "/engine.io/", &sid).await;
    assert_eq!(pending.await.unwrap(), (200, "6".to_owned()));
    // Sent over polling before the switch, answered after it: nothing is lost.
    assert_eq!(post(&gw, "/engine.io/", &q(&sid), "4before").await.0, 200);
    ws.send("5").await;
    assert_eq!(text(&mut ws).await, "4before");
    ws.send("4after").await;
    assert_eq!(text(&mut ws).await, "4after");
}

#[tokio::test]
async fn after_the_upgrade_polling_and_a_second_websocket_are_refused() {
    let gw = server().await;
    for path in PATHS {
        let sid = session(&gw, path).await;
        let mut ws = probe(&gw, path, &sid).await;
        ws.send("5").await;
        assert_eq!(get(&gw, path, &q(&sid)).await.0, 400);
        let mut second = ws_with_sid(&gw, path, &sid).await;
        second.closed(WAIT).await;
        if path == "/engine.io/" {
            ws.send("4hello").await;
            assert_eq!(text(&mut ws).await, "4hello");
        }
    }
}
