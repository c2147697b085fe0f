//! The inbox through the local gateway: `GET /chat/conversations` (order, unread counts,
//! paging, errors), `POST /chat/conversations` (lookup by phone number, rate limit), and the
//! `read {up_to}` event with its receipts and the `unread` event to the reader's other
//! devices. Also the list's query plan and time at 1,000 conversations.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use harness::client::{User, mobile};
use harness::ws::{RawSio, RawWsExt};
use harness::{TestEnv, s};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use serde_json::{Value, json};
use shared::chat::{self, NewMessage};
use shared::domain::{ClientMsgId, MessageText, UserId};

async fn send(env: &TestEnv, from: &User, to: &User, text: &str) -> String {
    let stored = chat::store_message(
        env.app(),
        NewMessage {
            from: UserId::parse(&from.user_id).unwrap(),
            to: UserId::parse(&to.user_id).unwrap(),
            text: MessageText::parse(text).unwrap(),
            client_id: Some(ClientMsgId::parse(&format!("c-{text}")).unwrap()),
        },
        shared::time::now(),
        None,
    )
    .await
    .unwrap();
    stored.message.id.to_hex()
}

async fn list(env: &TestEnv, user: &User, query: &str) -> Value {
    let r = env
        .api
        .get(&format!("/chat/conversations{query}"), Some(&user.token))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn the_list_is_newest_first_with_unread_counts_and_pages() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(3001)).await;
    let b = env.api.login(&mobile(3002)).await;
    let c = env.api.login(&mobile(3003)).await;
    assert_eq!(
        list(&env, &a, "").await,
        json!({"conversations": [], "next_before": null, "has_more": false})
    );

    send(&env, &b, &a, "b1").await;
    send(&env, &b, &a, "b2").await;
    send(&env, &a, &c, "a-to-c").await;
    let last = send(&env, &c, &a, "c1").await;
    // A retry with the same client_id stores nothing and counts nothing.
    send(&env, &c, &a, "c1").await;

    let page = list(&env, &a, "").await;
    let convs = page["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2, "{page}");
    assert_eq!(convs[0]["user"]["user_id"], c.user_id.as_str());
    assert_eq!(convs[0]["user"]["display_name"], c.display_name.as_str());
    assert_eq!(convs[0]["unread"], 1);
    let m = &convs[0]["last_message"];
    assert_eq!(s(m, "message_id"), last);
    assert_eq!(s(m, "text"), "c1");
    assert_eq!(s(m, "from"), c.user_id);
    assert_eq!(s(m, "to"), a.user_id);
    for key in ["created_at", "delivered_at", "read_at", "client_id"] {
        assert!(m.get(key).is_some(), "last_message lacks {key}: {m}");
    }
    assert_eq!(convs[1]["user"]["user_id"], b.user_id.as_str());
    assert_eq!(convs[1]["unread"], 2);
    assert_eq!(convs[1]["last_message"]["text"], "b2");
    assert_eq!(page["has_more"], false);

    // The sender's side: last message, nothing unread.
    let bs = list(&env, &b, "").await;
    assert_eq!(
        bs["conversations"][0]["user"]["user_id"],
        a.user_id.as_str()
    );
    assert_eq!(bs["conversations"][0]["unread"], 0);

    // Paging: one per page, following next_before.
    let p1 = list(&env, &a, "?limit=1").await;
    assert_eq!(p1["has_more"], true);
    assert_eq!(
        p1["conversations"][0]["user"]["user_id"],
        c.user_id.as_str()
    );
    let cursor = s(&p1, "next_before").to_owned();
    let p2 = list(&env, &a, &format!("?limit=1&before={cursor}")).await;
    assert_eq!(
        p2["conversations"][0]["user"]["user_id"],
        b.user_id.as_str()
    );
    assert_eq!(p2["has_more"], false);
    assert_eq!(p2["next_before"], Value::Null);

    // A new message moves a conversation to the top.
    send(&env, &b, &a, "b3").await;
    let page = list(&env, &a, "").await;
    assert_eq!(
        page["conversations"][0]["user"]["user_id"],
        b.user_id.as_str()
    );
    assert_eq!(page["conversations"][0]["unread"], 3);

    // Errors are the JSON ones, never a 500.
    for (query, code) in [
        ("?limit=0", "invalid_limit"),
        ("?limit=201", "invalid_limit"),
        ("?limit=x", "invalid_limit"),
        ("?before=nope", "invalid_cursor"),
        ("?before=12.zz", "invalid_cursor"),
    ] {
        let r = env
            .api
            .get(&format!("/chat/conversations{query}"), Some(&a.token))
            .await;
        assert_eq!((r.status, r.code()), (400, code), "{query}: {:?}", r.body);
        assert!(r.body["error"]["message"].is_string());
    }
    let r = env.api.get("/chat/conversations", None).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
}

#[tokio::test]
async fn start_a_chat_by_phone_number() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(3101)).await;
    let b = env.api.login(&mobile(3102)).await;
    let r = env
        .api
        .post(
            "/chat/conversations",
            Some(&a.token),
            json!({"mobile": b.mobile}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The user id and display name, nothing more (no mobile, no dates).
    assert_eq!(
        r.body,
        json!({"user": {"user_id": b.user_id, "display_name": b.display_name}})
    );
    let unknown = env
        .api
        .post(
            "/chat/conversations",
            Some(&a.token),
            json!({"mobile": mobile(3199)}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "unknown_user"));
    let own = env
        .api
        .post(
            "/chat/conversations",
            Some(&a.token),
            json!({"mobile": a.mobile}),
        )
        .await;
    assert_eq!((own.status, own.code()), (400, "self_message"));
    for (body, code) in [
        ("{\"mobile\":\"12\"}", "invalid_mobile"),
        ("{\"mobile\":5}", "invalid_body"),
        ("{nope", "malformed_json"),
    ] {
        let r = env
            .api
            .send(
                "POST",
                "/chat/conversations",
                Some(&a.token),
                Some(body.into()),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, code), "{body}");
    }
    let r = env
        .api
        .post("/chat/conversations", None, json!({"mobile": b.mobile}))
        .await;
    assert_eq!(r.status, 401);

    // Rate limited per caller: 3 lookups so far, the limit is 20 per window.
    let limit = shared::conversations::LOOKUP_LIMIT as usize;
    for _ in 3..limit {
        let r = env
            .api
            .post(
                "/chat/conversations",
                Some(&a.token),
                json!({"mobile": mobile(3198)}),
            )
            .await;
        assert_eq!(r.status, 404);
    }
    let limited = env
        .api
        .post(
            "/chat/conversations",
            Some(&a.token),
            json!({"mobile": b.mobile}),
        )
        .await;
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    // Another caller is not limited.
    let r = env
        .api
        .post(
            "/chat/conversations",
            Some(&b.token),
            json!({"mobile": a.mobile}),
        )
        .await;
    assert_eq!(r.status, 200);
}

/// The next event named `name` on `s`, skipping others.
async fn next_named(s: &mut RawSio, name: &str) -> Value {
    s.wait_event(name).await
}

/// The argument of the ack with id `id`, skipping other frames.
async fn ack_of(s: &mut RawSio, id: u32) -> Value {
    let prefix = format!("43{id}");
    for _ in 0..50 {
        let f = s.frame().await;
        if let Some(body) = f.strip_prefix(&prefix) {
            return serde_json::from_str::<Vec<Value>>(body).unwrap().remove(0);
        }
    }
    panic!("no ack {id}");
}

#[tokio::test]
async fn read_up_to_marks_in_bulk_sends_receipts_and_updates_other_devices() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(3201)).await;
    let b = env.api.login(&mobile(3202)).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(send(&env, &a, &b, &format!("m{i}")).await);
    }
    let (mut sa, _) = RawSio::login(&env.ws_url(""), &a.token).await;
    let (mut b1, welcome) = RawSio::login(&env.ws_url(""), &b.token).await;
    assert_eq!(welcome["pending"], 5);
    for id in &ids {
        assert_eq!(s(&next_named(&mut b1, "message").await, "message_id"), id);
    }
    for id in &ids {
        assert_eq!(s(&next_named(&mut sa, "delivered").await, "message_id"), id);
    }
    let (mut b2, _) = RawSio::login(&env.ws_url(""), &b.token).await;
    let before = list(&env, &b, "").await;
    assert_eq!(before["conversations"][0]["unread"], 5);

    // The sender may not mark its own messages read; unknown ids are refused.
    sa.ws
        .send(&format!(r#"421["read",{{"up_to":"{}"}}]"#, ids[0]))
        .await;
    assert_eq!(ack_of(&mut sa, 1).await["error"]["code"], "forbidden");
    sa.ws
        .send(r#"422["read",{"up_to":"65a1b2c3d4e5f60718293a4b"}]"#)
        .await;
    assert_eq!(ack_of(&mut sa, 2).await["error"]["code"], "unknown_message");
    sa.ws.send(r#"424["read",{"up_to":"nope"}]"#).await;
    assert_eq!(
        ack_of(&mut sa, 4).await["error"]["code"],
        "invalid_message_id"
    );

    // One event marks m0..m3.
    b1.ws
        .send(&format!(r#"423["read",{{"up_to":"{}"}}]"#, ids[3]))
        .await;
    let ack = ack_of(&mut b1, 3).await;
    assert_eq!(ack["message_id"], ids[3].as_str());
    assert!(ack["read_at"].is_string());
    for id in &ids[..4] {
        let receipt = next_named(&mut sa, "read").await;
        assert_eq!(s(&receipt, "message_id"), id);
        assert_eq!(s(&receipt, "by"), b.user_id);
    }
    // B's other device learns the new count.
    let unread = next_named(&mut b2, "unread").await;
    assert_eq!(unread, json!({"user_id": a.user_id, "unread": 1}));
    let after = list(&env, &b, "").await;
    assert_eq!(after["conversations"][0]["unread"], 1);
    let history = env
        .api
        .get(
            &format!("/chat/messages/{}?order=strict", a.user_id),
            Some(&b.token),
        )
        .await;
    let read: Vec<bool> = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["read_at"].is_string())
        .collect();
    assert_eq!(read, [true, true, true, true, false]);

    // Reading up to an already read message changes nothing and sends no receipts.
    b1.emit("read", json!({"up_to": ids[1]})).await;
    // The single form still works, and counts too.
    b1.emit("read", json!({"message_id": ids[4]})).await;
    let receipt = next_named(&mut sa, "read").await;
    assert_eq!(s(&receipt, "message_id"), ids[4]);
    let unread = next_named(&mut b2, "unread").await;
    assert_eq!(unread, json!({"user_id": a.user_id, "unread": 0}));
    let after = list(&env, &b, "").await;
    assert_eq!(after["conversations"][0]["unread"], 0);
    assert!(after["conversations"][0]["last_message"]["read_at"].is_string());
}

#[tokio::test]
async fn read_up_to_over_plain_json() {
    let env = TestEnv::start().await;
    let a = env.api.login(&mobile(3301)).await;
    let b = env.api.login(&mobile(3302)).await;
    let first = send(&env, &a, &b, "j1").await;
    let second = send(&env, &a, &b, "j2").await;
    let mut ws = harness::ws::RawWs::connect(&env.ws_url(&format!("/?token={}", b.token)))
        .await
        .unwrap();
    ws.send(&json!({"action": "read", "up_to": second}).to_string())
        .await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let f = ws.text(harness::ws::WAIT).await;
        let v: Value = serde_json::from_str(&f).unwrap();
        seen.push(v["event"].as_str().unwrap_or("").to_owned());
        if v["event"] == "read_ack" {
            assert_eq!(v["data"]["message_id"], second.as_str());
            break;
        }
    }
    assert!(seen.contains(&"read_ack".to_owned()), "{seen:?}");
    let h = env
        .api
        .get(
            &format!("/chat/messages/{}?order=strict", a.user_id),
            Some(&b.token),
        )
        .await;
    let msgs = h.body["messages"].as_array().unwrap();
    assert_eq!(s(&msgs[0], "message_id"), first);
    assert!(msgs.iter().all(|m| m["read_at"].is_string()));
}

/// Seeds 1,000 conversations for one user, then measures the list's first and a later page
/// through the gateway and prints the summary query's plan (`cargo test -- --nocapture`).
#[tokio::test]
async fn the_list_at_1000_conversations() {
    let env = TestEnv::start().await;
    let me = env.api.login(&mobile(3400)).await;
    let me_id = UserId::parse(&me.user_id).unwrap();
    let now = bson::DateTime::now();
    let partners: Vec<shared::store::UserDoc> = (0..1000)
        .map(|i| shared::store::UserDoc {
            id: bson::oid::ObjectId::new(),
            mobile: format!("+1650555{i:04}"),
            display_name: format!("Partner {i}"),
            created_at: now,
        })
        .collect();
    env.app().store.users.insert_many(&partners).await.unwrap();
    let seeded = Instant::now();
    futures::stream::iter(partners.iter().enumerate())
        .for_each_concurrent(16, |(i, p)| {
            let app = env.app();
            async move {
                let (from, to) = if i % 2 == 0 {
                    (UserId::from_object_id(p.id), me_id)
                } else {
                    (me_id, UserId::from_object_id(p.id))
                };
                chat::store_message(
                    app,
                    NewMessage {
                        from,
                        to,
                        text: MessageText::parse(&format!("hello {i}")).unwrap(),
                        client_id: None,
                    },
                    shared::time::now(),
                    None,
                )
                .await
                .unwrap();
            }
        })
        .await;
    println!("seeded 1000 conversations in {:?}", seeded.elapsed());
    let count = env
        .db
        .collection::<bson::Document>("conversations")
        .count_documents(bson::doc! { "owner": me_id.object_id() })
        .await
        .unwrap();
    assert_eq!(count, 1000);

    // Warm up once (connection pool, caches), then time.
    list(&env, &me, "").await;
    let mut first_ms = Vec::new();
    let mut later_ms = Vec::new();
    let mut cursor = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let page = list(&env, &me, "?limit=50").await;
        first_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page["conversations"].as_array().unwrap().len(), 50);
        assert_eq!(page["has_more"], true);
        cursor = s(&page, "next_before").to_owned();
    }
    for _ in 0..5 {
        let t = Instant::now();
        let page = list(&env, &me, &format!("?limit=50&before={cursor}")).await;
        later_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page["conversations"].as_array().unwrap().len(), 50);
    }
    // Walk every page: 1,000 conversations, each once, newest first.
    let mut seen = std::collections::HashSet::new();
    let mut before: Option<String> = None;
    let mut last_at = String::from("9999");
    loop {
        let q = match &before {
            Some(c) => format!("?limit=200&before={c}"),
            None => "?limit=200".to_owned(),
        };
        let page = list(&env, &me, &q).await;
        for c in page["conversations"].as_array().unwrap() {
            assert!(seen.insert(s(&c["user"], "user_id").to_owned()));
            let at = s(&c["last_message"], "created_at").to_owned();
            assert!(at <= last_at, "not newest first: {at} after {last_at}");
            last_at = at;
        }
        match page["next_before"].as_str() {
            Some(c) => before = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 1000);
    first_ms.sort_by(f64::total_cmp);
    later_ms.sort_by(f64::total_cmp);
    println!(
        "GET /chat/conversations?limit=50 at 1000 conversations: first page median {:.2} ms, later page median {:.2} ms (through the local gateway, debug build)",
        first_ms[2], later_ms[2]
    );
    // The core alone, on a client that counts the commands it sends: MongoDB round trips
    // and time per page without HTTP in the way.
    let commands: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = commands.clone();
    let mut opts = mongodb::options::ClientOptions::parse(harness::mongo_uri())
        .await
        .unwrap();
    opts.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
        if let CommandEvent::Started(s) = ev {
            sink.lock().unwrap().push(s.command_name);
        }
    }));
    let client = mongodb::Client::with_options(opts).unwrap();
    let sdk = local_gateway::sdk_config(env.gateway.management_addr).await;
    let app = shared::App::with_client(env.app().config.clone(), &sdk, client)
        .await
        .unwrap();
    let cursor = cursor.as_str();
    for before in [None, Some(cursor)] {
        let query = || shared::conversations::ListQuery::parse(None, before).unwrap();
        shared::conversations::list(&app, me_id, query())
            .await
            .unwrap();
        let mut times = Vec::new();
        for _ in 0..21 {
            commands.lock().unwrap().clear();
            let t = Instant::now();
            let page = shared::conversations::list(&app, me_id, query())
                .await
                .unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(page.conversations.len(), 50);
            // One find on the summaries, then the messages and the names (concurrently).
            assert_eq!(*commands.lock().unwrap(), ["find", "find", "find"]);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "conversations::list, 1000 conversations, limit 50, {}: 3 finds in 2 rounds, median {:.2} ms, p90 {:.2} ms (debug build)",
            if before.is_some() {
                "with a cursor"
            } else {
                "first page"
            },
            times[10],
            times[18]
        );
    }

    // The summaries query's plan, for the first page and for a page after a cursor.
    let (at_ms, last_id) = cursor.split_once('.').unwrap();
    let at = bson::DateTime::from_millis(at_ms.parse().unwrap());
    let last_id = bson::oid::ObjectId::parse_str(last_id).unwrap();
    let owner = me_id.object_id();
    for (what, filter) in [
        ("first page", bson::doc! { "owner": owner }),
        (
            "after a cursor",
            bson::doc! { "owner": owner, "last_at": { "$lte": at }, "$or": [
                { "last_at": { "$lt": at } },
                { "last_at": at, "last_id": { "$lt": last_id } },
            ] },
        ),
    ] {
        let plan = env
            .db
            .run_command(bson::doc! {
                "explain": {
                    "find": "conversations",
                    "filter": filter,
                    "sort": { "last_at": -1, "last_id": -1 },
                    "limit": 51,
                },
                "verbosity": "executionStats",
            })
            .await
            .unwrap();
        let plan: Value = serde_json::to_value(&plan).unwrap();
        let mut stages = Vec::new();
        let mut stage = &plan["queryPlanner"]["winningPlan"];
        while let Some(name) = stage["stage"].as_str() {
            stages.push(match stage["indexName"].as_str() {
                Some(index) => format!("{name}({index})"),
                None => name.to_owned(),
            });
            stage = match &stage["inputStage"] {
                Value::Null => &stage["inputStages"][0],
                next => next,
            };
        }
        let stats = &plan["executionStats"];
        println!(
            "explain ({what}): {} ; nReturned {} keysExamined {} docsExamined {}",
            stages.join(" <- "),
            stats["nReturned"],
            stats["totalKeysExamined"],
            stats["totalDocsExamined"]
        );
        let text = plan["queryPlanner"]["winningPlan"].to_string();
        assert!(
            text.contains("\"inbox\"") && !text.contains("COLLSCAN") && !text.contains("\"SORT\""),
            "not an index walk without a sort: {text}"
        );
        // The page (51 with the has_more probe), plus, after a cursor, the entries of the
        // cursor's millisecond that sort before it (at least the cursor's own).
        let ties = env
            .db
            .collection::<bson::Document>("conversations")
            .count_documents(bson::doc! { "owner": owner, "last_at": at })
            .await
            .unwrap();
        let bound = if what == "first page" { 51 } else { 51 + ties };
        assert!(
            stats["totalDocsExamined"].as_u64().unwrap() <= bound,
            "{bound}: {stats}"
        );
    }
}
