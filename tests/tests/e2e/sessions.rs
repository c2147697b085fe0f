//! Sessions that end: a connection lives no longer than the login session that opened it.
//! (Logout with the stock clients is in `tests/node/connection.test.mjs`.)

use std::time::Duration;

use harness::client::mobile;
use harness::ws::{Frame, RawSio, RawWs, RawWsExt, WAIT};
use harness::{EnvOptions, TestEnv};
use serde_json::{Value, json};

/// Every text frame until the server closes the connection within `within` (fails if it
/// stays open). Engine.IO pings are answered, so the heartbeat keeps a silent client.
async fn frames_until_closed(ws: &mut RawWs, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut frames = Vec::new();
    loop {
        match ws.next_until(deadline).await {
            Frame::Text(t) if t == "2" => ws.send("3").await,
            Frame::Text(t) => frames.push(t),
            Frame::Binary(_) => {}
            Frame::Close(_) | Frame::Ended => return frames,
            Frame::Timeout => panic!("still open after {within:?}; got {frames:?}"),
        }
    }
}

fn sio_system_error(frame: &str) -> Option<String> {
    let (name, args) = test_client::socket::parse_event(frame)?;
    (name == "system" && args[0]["type"] == "error")
        .then(|| args[0]["code"].as_str().unwrap_or("").to_owned())
}

async fn wait_for_expiry(env: &TestEnv, token: &str) {
    harness::eventually("the token expires", Duration::from_secs(10), || async {
        env.api.get("/users/me", Some(token)).await.status == 401
    })
    .await;
}

#[tokio::test]
async fn events_on_an_expired_session_are_refused_and_the_connection_closes() {
    // No sweep: the event path alone must notice.
    let mut options = EnvOptions::default().var("SESSION_TTL_SECS", "3");
    options.schedule_every = Duration::from_secs(3600);
    let env = TestEnv::with(options).await;
    let a = env.api.login(&mobile(900)).await;
    let b = env.api.login(&mobile(901)).await;
    let (mut sio, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let mut json_ws = RawWs::connect(&env.ws_url(&format!("/?token={}", a.token)))
        .await
        .unwrap();
    let welcome: Value = serde_json::from_str(&json_ws.text(WAIT).await).unwrap();
    assert_eq!(welcome["data"]["type"], "welcome");
    wait_for_expiry(&env, &a.token).await;

    let late = json!(["send_message", { "to": b.user_id, "text": "too late" }]);
    sio.ws.send(&format!("427{late}")).await;
    let frames = frames_until_closed(&mut sio.ws, WAIT).await;
    assert!(
        frames
            .iter()
            .any(|f| sio_system_error(f).as_deref() == Some("unauthorized")),
        "{frames:?}"
    );
    let ack = frames
        .iter()
        .find_map(|f| f.strip_prefix("437"))
        .expect("an error ack");
    let ack: Value = serde_json::from_str(ack).unwrap();
    assert_eq!(ack[0]["error"]["code"], "unauthorized");
    assert!(
        frames.iter().any(|f| f == "41"),
        "no DISCONNECT: {frames:?}"
    );

    json_ws
        .send(&json!({ "action": "typing", "to": b.user_id, "typing": true }).to_string())
        .await;
    let frames = frames_until_closed(&mut json_ws, WAIT).await;
    let refused = frames.iter().any(|f| {
        let v: Value = serde_json::from_str(f).unwrap_or_default();
        v["event"] == "system"
            && v["data"]["type"] == "error"
            && v["data"]["code"] == "unauthorized"
    });
    assert!(refused, "{frames:?}");

    // Nothing was stored, and nothing of the user's connections is left.
    let stored = env
        .db
        .collection::<bson::Document>("messages")
        .count_documents(bson::doc! {})
        .await
        .unwrap();
    assert_eq!(stored, 0);
    harness::eventually("the records are gone", WAIT, || async {
        env.db
            .collection::<bson::Document>("connections")
            .count_documents(bson::doc! {})
            .await
            .unwrap()
            == 0
    })
    .await;
}

#[tokio::test]
async fn the_sweep_closes_sockets_whose_session_expired() {
    let env = TestEnv::with(EnvOptions::default().var("SESSION_TTL_SECS", "3")).await;
    let a = env.api.login(&mobile(910)).await;
    let (mut sio, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let mut json_ws = RawWs::connect(&env.ws_url(&format!("/?token={}", a.token)))
        .await
        .unwrap();
    json_ws.text(WAIT).await;
    // The client stays silent but answers pings (so the heartbeat keeps it); the server ends
    // both connections once the session expires.
    let frames = frames_until_closed(&mut sio.ws, Duration::from_secs(3) + WAIT).await;
    assert_eq!(frames.last().map(String::as_str), Some("41"), "{frames:?}");
    assert_eq!(env.api.get("/users/me", Some(&a.token)).await.status, 401);
    let frames = frames_until_closed(&mut json_ws, WAIT).await;
    assert!(
        frames.iter().any(|f| f.contains("\"unauthorized\"")),
        "{frames:?}"
    );
}

#[tokio::test]
async fn token_hashes_at_rest_are_keyed_and_old_sessions_move_under_the_key() {
    use bson::doc;
    use shared::domain::Token;
    let env = TestEnv::start().await;
    let u = env.api.login(&mobile(920)).await;
    let token = Token::parse(&u.token).unwrap();
    let keyed = token.hash(&env.app().config.hash_key);
    let sessions = env.db.collection::<bson::Document>("sessions");
    let stored = sessions.find_one(doc! { "_id": &keyed }).await.unwrap();
    let mut stored = stored.expect("stored under the keyed hash");
    assert!(
        sessions
            .find_one(doc! { "_id": token.legacy_hash() })
            .await
            .unwrap()
            .is_none()
    );
    // A session stored before the key existed (unkeyed SHA-256) still works, once moved.
    sessions.delete_one(doc! { "_id": &keyed }).await.unwrap();
    stored.insert("_id", token.legacy_hash());
    sessions.insert_one(&stored).await.unwrap();
    assert_eq!(env.api.get("/users/me", Some(&u.token)).await.status, 200);
    assert!(
        sessions
            .find_one(doc! { "_id": &keyed })
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        sessions
            .find_one(doc! { "_id": token.legacy_hash() })
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(env.api.get("/users/me", Some(&u.token)).await.status, 200);
}

#[tokio::test]
async fn logout_all_ends_every_session_and_socket_of_the_user() {
    let env = TestEnv::start().await;
    let phone = env.api.login(&mobile(930)).await;
    let laptop = env.api.login(&mobile(930)).await;
    let other = env.api.login(&mobile(931)).await;
    let (mut s1, _) = RawSio::login(&env.ws_url(""), &phone.token).await;
    let (mut s2, _) = RawSio::login(&env.ws_url(""), &laptop.token).await;
    let (mut s3, _) = RawSio::login(&env.ws_url(""), &other.token).await;
    let out = env
        .api
        .post("/users/auth/logout_all", Some(&phone.token), json!({}))
        .await;
    assert_eq!(out.status, 204, "{:?}", out.body);
    for s in [&mut s1, &mut s2] {
        let frames = frames_until_closed(&mut s.ws, WAIT).await;
        assert!(frames.iter().any(|f| f == "41"), "{frames:?}");
    }
    for token in [&phone.token, &laptop.token] {
        assert_eq!(env.api.get("/users/me", Some(token)).await.status, 401);
    }
    // Someone else is untouched.
    assert_eq!(
        env.api.get("/users/me", Some(&other.token)).await.status,
        200
    );
    s3.emit(
        "send_message",
        json!({ "to": phone.user_id, "text": "anyone?" }),
    )
    .await;
    let echo = s3.wait_event("message").await;
    assert_eq!(echo["text"], "anyone?");
    // Their refresh tokens died with them.
    for refresh in [&phone.refresh_token, &laptop.refresh_token] {
        let r = env
            .api
            .post(
                "/users/auth/refresh",
                None,
                json!({ "refresh_token": refresh }),
            )
            .await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"));
    }
    // A dead token cannot do it again.
    let again = env
        .api
        .post("/users/auth/logout_all", Some(&phone.token), json!({}))
        .await;
    assert_eq!((again.status, again.code()), (401, "unauthorized"));
}

async fn refresh(env: &TestEnv, refresh_token: &str) -> harness::client::Resp {
    env.api
        .post(
            "/users/auth/refresh",
            None,
            json!({ "refresh_token": refresh_token }),
        )
        .await
}

#[tokio::test]
async fn access_tokens_are_short_lived_and_refresh_tokens_renew_them_once_each() {
    // Sockets that sit idle while tokens expire: a heartbeat they survive unread.
    let env = TestEnv::with(
        EnvOptions::default()
            .var("ACCESS_TOKEN_TTL_SECS", "2")
            .var("PING_INTERVAL_MS", "5000")
            .var("PING_TIMEOUT_MS", "5000"),
    )
    .await;
    let u = env.api.login(&mobile(940)).await;
    let friend = env.api.login(&mobile(941)).await;
    // The socket belongs to the login session, not to the access token that opened it.
    let (mut sio, _) = RawSio::login(&env.ws_url(""), &u.token).await;
    let (mut fs, _) = RawSio::login(&env.ws_url(""), &friend.token).await;
    wait_for_expiry(&env, &u.token).await;
    fs.emit(
        "send_message",
        json!({ "to": u.user_id, "text": "still there?" }),
    )
    .await;
    assert_eq!(sio.wait_event("message").await["text"], "still there?");
    // (Reading answers the friend's pings too: an idle reader would be dropped.)
    assert_eq!(fs.wait_event("message").await["text"], "still there?");

    // Refresh: a new pair, the same user, a token that works.
    let first = refresh(&env, &u.refresh_token).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let token = first.body["token"].as_str().unwrap().to_owned();
    let next_refresh = first.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(token, u.token);
    assert_ne!(next_refresh, u.refresh_token);
    assert_eq!(first.body["user_id"], u.user_id.as_str());
    let me = env.api.get("/users/me", Some(&token)).await;
    assert_eq!(
        (me.status, me.body["user_id"].as_str()),
        (200, Some(u.user_id.as_str()))
    );
    // The access token lives ACCESS_TOKEN_TTL_SECS, the session much longer.
    let access_ends =
        chrono::DateTime::parse_from_rfc3339(first.body["expires_at"].as_str().unwrap()).unwrap();
    let session_ends =
        chrono::DateTime::parse_from_rfc3339(first.body["refresh_expires_at"].as_str().unwrap())
            .unwrap();
    assert!(
        session_ends - access_ends > chrono::TimeDelta::days(1),
        "{:?}",
        first.body
    );

    // The next refresh token works in turn, and the session's socket is still open.
    let second = refresh(&env, &next_refresh).await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    let latest = second.body["token"].as_str().unwrap().to_owned();
    fs.emit(
        "send_message",
        json!({ "to": u.user_id, "text": "after two refreshes" }),
    )
    .await;
    assert_eq!(
        sio.wait_event("message").await["text"],
        "after two refreshes"
    );
    assert_eq!(
        fs.wait_event("message").await["text"],
        "after two refreshes"
    );

    // Reusing an exchanged refresh token ends the whole session: every token and the socket.
    let reused = refresh(&env, &u.refresh_token).await;
    assert_eq!((reused.status, reused.code()), (401, "refresh_reused"));
    let frames = frames_until_closed(&mut sio.ws, WAIT).await;
    assert!(frames.iter().any(|f| f == "41"), "{frames:?}");
    assert_eq!(env.api.get("/users/me", Some(&latest)).await.status, 401);
    let newest = second.body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&env, newest).await.status, 401);
    // The friend's session is untouched: their socket still sends.
    fs.emit("send_message", json!({ "to": u.user_id, "text": "gone?" }))
        .await;
    assert_eq!(fs.wait_event("message").await["text"], "gone?");
}

#[tokio::test]
async fn refresh_refuses_bad_input_and_ended_sessions() {
    let env = TestEnv::start().await;
    let u = env.api.login(&mobile(950)).await;
    for (body, status, code) in [
        (json!({}), 400, "invalid_body"),
        (json!({ "refresh_token": 42 }), 400, "invalid_body"),
        (json!({ "refresh_token": "short" }), 401, "unauthorized"),
        // An access token is not a refresh token.
        (json!({ "refresh_token": u.token }), 401, "unauthorized"),
    ] {
        let r = env
            .api
            .post("/users/auth/refresh", None, body.clone())
            .await;
        assert_eq!((r.status, r.code()), (status, code), "{body}");
        assert!(
            !r.body.to_string().contains(&u.token),
            "echoed: {:?}",
            r.body
        );
    }
    // Two exchanges of one refresh token racing: one wins, the other is a reuse.
    let (a, b) = tokio::join!(
        refresh(&env, &u.refresh_token),
        refresh(&env, &u.refresh_token)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{:?} {:?}", a.body, b.body);

    // Logout ends the session: its refresh token no longer works.
    let v = env.api.login(&mobile(951)).await;
    let out = env
        .api
        .post("/users/auth/logout", Some(&v.token), json!({}))
        .await;
    assert_eq!(out.status, 204);
    let r = refresh(&env, &v.refresh_token).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
}

#[tokio::test]
async fn no_refresh_after_the_session_ends() {
    let env = TestEnv::with(EnvOptions::default().var("SESSION_TTL_SECS", "2")).await;
    let u = env.api.login(&mobile(960)).await;
    wait_for_expiry(&env, &u.token).await;
    let r = refresh(&env, &u.refresh_token).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
}
