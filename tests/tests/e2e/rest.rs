//! The REST half through the local gateway: login, identity, profile, history, errors.

use std::time::Duration;

use harness::client::mobile;
use harness::{EnvOptions, TestEnv, s};
use serde_json::json;
use shared::chat::{self, NewMessage};
use shared::domain::{MessageText, UserId};

#[tokio::test]
async fn whole_rest_flow() {
    let env = TestEnv::start().await;
    let api = &env.api;
    let otp = api.request_otp("+14155552671").await;
    assert_eq!(otp.status, 200);
    assert_eq!(s(&otp.body, "mobile"), "+14155552671");
    assert_eq!(otp.body["expires_in"], 300);
    // The tests run with OTP_MODE=sms: the answer has no code, the text message does.
    assert!(otp.body.get("otp").is_none(), "{:?}", otp.body);
    let code = &api.code("+14155552671", &otp).await;
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));

    let v = api.verify("+14155552671", code).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    let token = s(&v.body, "token").to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(s(&v.body, "display_name"), "User 2671");
    assert!(chrono::DateTime::parse_from_rfc3339(s(&v.body, "expires_at")).is_ok());

    for header in [token.clone(), format!("Bearer {token}")] {
        let me = api.get("/users/me", Some(&header)).await;
        assert_eq!(me.status, 200);
        assert_eq!(s(&me.body, "user_id"), s(&v.body, "user_id"));
        assert_eq!(s(&me.body, "mobile"), "+14155552671");
        assert!(me.body["created_at"].is_string());
    }

    let renamed = api
        .send(
            "PATCH",
            "/users/me",
            Some(&token),
            Some(json!({"display_name": "  Ada  "}).to_string()),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(s(&renamed.body, "display_name"), "Ada");
    assert_eq!(
        s(
            &api.get("/users/me", Some(&token)).await.body,
            "display_name"
        ),
        "Ada"
    );

    let other = api.login(&mobile(1001)).await;
    let history = api
        .get(&format!("/chat/messages/{}", other.user_id), Some(&token))
        .await;
    assert_eq!(history.status, 200);
    assert_eq!(history.body["messages"], json!([]));

    let out = api
        .send("POST", "/users/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.status, 204);
    let me = api.get("/users/me", Some(&token)).await;
    assert_eq!((me.status, me.code()), (401, "unauthorized"));
    let again = api
        .send("POST", "/users/auth/logout", Some(&token), None)
        .await;
    assert_eq!(again.status, 401);
}

#[tokio::test]
async fn identity_is_stable_per_mobile() {
    let env = TestEnv::start().await;
    let a1 = env.api.login(&mobile(1)).await;
    let a2 = env.api.login(&mobile(1)).await;
    let b = env.api.login(&mobile(2)).await;
    assert_eq!(a1.user_id, a2.user_id);
    assert_ne!(a1.token, a2.token);
    assert_ne!(a1.user_id, b.user_id);
    // Both sessions of the same user work.
    for t in [&a1.token, &a2.token] {
        assert_eq!(env.api.get("/users/me", Some(t)).await.status, 200);
    }
    let users = env.db.collection::<bson::Document>("users");
    assert_eq!(users.count_documents(bson::doc! {}).await.unwrap(), 2);
}

#[tokio::test]
async fn otp_rules() {
    let env = TestEnv::start().await;
    let api = &env.api;
    let m = mobile(10);

    // Wrong OTP.
    let first = api.request_otp(&m).await;
    let right = api.code(&m, &first).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(api.verify(&m, wrong).await.code(), "otp_invalid");
    // Still usable after one wrong try; works once.
    assert_eq!(api.verify(&m, &right).await.status, 200);
    assert_eq!(api.verify(&m, &right).await.code(), "otp_invalid");

    // A new request replaces the old OTP.
    let old = api.code(&m, &api.request_otp(&m).await).await;
    let new = api.code(&m, &api.request_otp(&m).await).await;
    if old != new {
        assert_eq!(api.verify(&m, &old).await.code(), "otp_invalid");
    }
    assert_eq!(api.verify(&m, &new).await.status, 200);

    // Five wrong tries lock it, even for the right code.
    let m2 = mobile(11);
    let right = api.code(&m2, &api.request_otp(&m2).await).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let r = api.verify(&m2, wrong).await;
        assert_eq!((r.status, r.code()), (401, "otp_invalid"));
    }
    assert_eq!(api.verify(&m2, &right).await.code(), "otp_locked");

    // Never requested.
    assert_eq!(
        api.verify(&mobile(12), "123456").await.code(),
        "otp_invalid"
    );
    // The stored OTP is a hash, never the code.
    let stored = env
        .db
        .collection::<bson::Document>("otps")
        .find_one(bson::doc! { "_id": &m2 })
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stored.get_str("otp_hash").unwrap(), right);
    assert_eq!(stored.get_str("otp_hash").unwrap().len(), 64);
}

#[tokio::test]
async fn otp_expires() {
    let env = TestEnv::with(EnvOptions::default().var("OTP_TTL_SECS", "1")).await;
    let m = mobile(20);
    let r = env.api.request_otp(&m).await;
    assert_eq!(r.body["expires_in"], 1);
    // Wait for the stored expiry to pass (verifying early would use the OTP up).
    let expires = env
        .db
        .collection::<bson::Document>("otps")
        .find_one(bson::doc! {"_id": &m})
        .await
        .unwrap()
        .unwrap()
        .get_datetime("expires_at")
        .unwrap()
        .timestamp_millis();
    harness::eventually(
        "the OTP's expiry passes",
        Duration::from_secs(5),
        || async { chrono::Utc::now().timestamp_millis() > expires },
    )
    .await;
    let code = env.api.code(&m, &r).await;
    let v = env.api.verify(&m, &code).await;
    assert_eq!((v.status, v.code()), (401, "otp_expired"));
}

#[tokio::test]
async fn otp_requests_are_rate_limited() {
    let env = TestEnv::start().await;
    let m = mobile(30);
    for _ in 0..5 {
        assert_eq!(env.api.request_otp(&m).await.status, 200);
    }
    let r = env.api.request_otp(&m).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    // Another number is not affected.
    assert_eq!(env.api.request_otp(&mobile(31)).await.status, 200);
}

#[tokio::test]
async fn one_otp_verified_twice_at_once_logs_in_once() {
    let env = TestEnv::start().await;
    let m = mobile(40);
    let otp = env.api.code(&m, &env.api.request_otp(&m).await).await;
    let (a, b) = tokio::join!(env.api.verify(&m, &otp), env.api.verify(&m, &otp));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401]);
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let env = TestEnv::start().await;
    let api = &env.api;
    let cases: Vec<(&str, &str, Option<String>, u16, &str)> = vec![
        (
            "POST",
            "/users/auth/request_otp",
            Some(r#"{"mobile":"12345"}"#.into()),
            400,
            "invalid_mobile",
        ),
        (
            "POST",
            "/users/auth/request_otp",
            Some(r#"{"mobile":"+1 not a number"}"#.into()),
            400,
            "invalid_mobile",
        ),
        (
            "POST",
            "/users/auth/request_otp",
            Some(r#"{"mobile":12}"#.into()),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/users/auth/request_otp",
            Some(r#"{}"#.into()),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/users/auth/request_otp",
            Some(r#"{"mobile":"#.into()),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/users/auth/request_otp",
            None,
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/users/auth/request_otp",
            Some(format!(r#"{{"mobile":"{}"}}"#, "1".repeat(17_000))),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/users/auth/verify",
            Some(r#"{"mobile":"+14155552671","otp":"12ab56"}"#.into()),
            400,
            "invalid_otp",
        ),
        (
            "POST",
            "/users/auth/verify",
            Some(r#"{"mobile":"+14155552671","otp":123456}"#.into()),
            400,
            "invalid_body",
        ),
        ("GET", "/users/me", None, 401, "unauthorized"),
        ("POST", "/users/auth/logout", None, 401, "unauthorized"),
        ("GET", "/nowhere", None, 404, "not_found"),
        ("DELETE", "/users/me", None, 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let sent = body.clone().unwrap_or_default();
        let r = api.send(method, path, None, body).await;
        // The answer never echoes what was submitted (`{"otp":123456}` stays out of it).
        let message = r.body["error"]["message"].as_str().unwrap_or("");
        for secret in ["123456", "12ab56", "not a number", "12345"] {
            assert!(
                !(sent.contains(secret) && message.contains(secret)),
                "{method} {path}: the error echoes `{secret}`: {message}"
            );
        }
        assert_eq!(
            (r.status, r.code()),
            (status, code),
            "{method} {path}: {:?}",
            r.body
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    for token in [
        "nonsense",
        "Bearer ",
        "Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let r = api.get("/users/me", Some(token)).await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{token}");
    }
    let user = api.login(&mobile(50)).await;
    for name in [json!(""), json!("   "), json!("x".repeat(65)), json!(5)] {
        let r = api
            .send(
                "PATCH",
                "/users/me",
                Some(&user.token),
                Some(json!({ "display_name": name }).to_string()),
            )
            .await;
        assert_eq!(r.status, 400, "{name}");
    }
    for (path, code) in [
        ("/chat/messages/not-an-id".to_owned(), "invalid_user_id"),
        (
            format!("/chat/messages/{}?limit=0", user.user_id),
            "invalid_limit",
        ),
        (
            format!("/chat/messages/{}?limit=201", user.user_id),
            "invalid_limit",
        ),
        (
            format!("/chat/messages/{}?limit=ten", user.user_id),
            "invalid_limit",
        ),
        (
            format!("/chat/messages/{}?before=zzz", user.user_id),
            "invalid_message_id",
        ),
        (
            format!("/chat/messages/{}?order=random", user.user_id),
            "invalid_order",
        ),
    ] {
        let r = api.get(&path, Some(&user.token)).await;
        assert_eq!((r.status, r.code()), (400, code), "{path}");
    }
    let r = api
        .get(
            &format!("/chat/messages/{}", UserId::new()),
            Some(&user.token),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "unknown_user"));
}

#[tokio::test]
async fn tokens_expire() {
    let env = TestEnv::with(EnvOptions::default().var("ACCESS_TOKEN_TTL_SECS", "1")).await;
    let u = env.api.login(&mobile(60)).await;
    assert_eq!(env.api.get("/users/me", Some(&u.token)).await.status, 200);
    harness::eventually("the token expires", Duration::from_secs(5), || async {
        env.api.get("/users/me", Some(&u.token)).await.status == 401
    })
    .await;
}

async fn seed_messages(env: &TestEnv, from: &str, to: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (a, b) = if i % 3 == 2 { (to, from) } else { (from, to) };
        let stored = chat::store_message(
            env.app(),
            NewMessage {
                from: UserId::parse(a).unwrap(),
                to: UserId::parse(b).unwrap(),
                text: MessageText::parse(&format!("message {i}")).unwrap(),
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

#[tokio::test]
async fn history_pages_oldest_first_without_gaps() {
    // The default order is the subject here: artistic chronology (tested on its own) off.
    let env = TestEnv::with(EnvOptions::default().var("CHAT_EXPERIMENTS", "off")).await;
    let a = env.api.login(&mobile(70)).await;
    let b = env.api.login(&mobile(71)).await;
    let c = env.api.login(&mobile(72)).await;
    let ids = seed_messages(&env, &a.user_id, &b.user_id, 23).await;
    seed_messages(&env, &a.user_id, &c.user_id, 4).await;

    // Default page: everything, oldest first, same from both sides.
    for (me, other) in [(&a, &b), (&b, &a)] {
        let page = env
            .api
            .get(
                &format!("/chat/messages/{}", other.user_id),
                Some(&me.token),
            )
            .await;
        assert_eq!(page.status, 200);
        let got: Vec<&str> = page.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| s(m, "message_id"))
            .collect();
        assert_eq!(got, ids);
        assert_eq!(page.body["has_more"], false);
        let first = &page.body["messages"][0];
        for key in ["message_id", "from", "to", "text", "created_at"] {
            assert!(first[key].is_string(), "{key}");
        }
        assert!(first["delivered_at"].is_null() && first["read_at"].is_null());
    }

    // Pages of 5 walking back with `before` cover everything once.
    let mut seen: Vec<String> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/chat/messages/{}?limit=5&order=strict", b.user_id);
        if let Some(c) = &before {
            path.push_str(&format!("&before={c}"));
        }
        let page = env.api.get(&path, Some(&a.token)).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let mut batch: Vec<String> = page.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| s(m, "message_id").to_owned())
            .collect();
        assert!(batch.len() <= 5);
        batch.extend(seen);
        seen = batch;
        match page.body["next_before"].as_str() {
            Some(c) => before = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // A cursor from another conversation is refused.
    let other_conv = seed_messages(&env, &a.user_id, &c.user_id, 1).await;
    let r = env
        .api
        .get(
            &format!("/chat/messages/{}?before={}", b.user_id, other_conv[0]),
            Some(&a.token),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_cursor"));
}

#[tokio::test]
async fn history_of_a_stranger_is_empty_not_leaked() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(80)).await;
    let b = env.api.login(&mobile(81)).await;
    let c = env.api.login(&mobile(82)).await;
    seed_messages(&env, &a.user_id, &b.user_id, 3).await;
    let r = env
        .api
        .get(&format!("/chat/messages/{}", b.user_id), Some(&c.token))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["messages"], json!([]));
}
