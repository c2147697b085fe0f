//! The migration runner against a real server: applies everything once, records it, and
//! two runners at once apply each migration once.

use futures::TryStreamExt;
use harness::{mongo_uri, unique_db_name};

async fn fresh_db() -> mongodb::Database {
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    client.database(&unique_db_name())
}

#[tokio::test]
async fn applies_pending_and_records_them() {
    let db = fresh_db().await;
    let before = migrations::status(&db).await.unwrap();
    assert!(before.iter().all(|s| s.applied_at.is_none()));
    let applied = migrations::run_pending(&db).await.unwrap();
    assert_eq!(applied.len(), migrations::all().len());
    let after = migrations::status(&db).await.unwrap();
    assert!(after.iter().all(|s| s.applied_at.is_some()));
    // Idempotent, and a cold start with nothing pending takes no lease (writes nothing).
    let lock = async || {
        db.collection::<bson::Document>(migrations::COLLECTION)
            .find_one(bson::doc! { "_id": "lock" })
            .await
            .unwrap()
    };
    let held = lock().await;
    assert!(held.is_some(), "the first run took the lease");
    assert!(migrations::run_pending(&db).await.unwrap().is_empty());
    assert_eq!(
        lock().await,
        held,
        "nothing pending: the lease was not taken again"
    );
    // An inbox's lock document holds its user's recovery-log head: no TTL forgets it.
    let lock_indexes = db
        .collection::<bson::Document>("locks")
        .list_index_names()
        .await
        .unwrap_or_default();
    assert!(
        !lock_indexes.contains(&"until_ttl".to_owned()),
        "{lock_indexes:?}"
    );
    for (coll, name) in [
        ("connections", "live_users"),
        ("rate_limits", "expires_ttl"),
        ("connections", "by_session"),
        ("connections", "by_session_expiry"),
    ] {
        let names = db
            .collection::<bson::Document>(coll)
            .list_index_names()
            .await
            .unwrap();
        assert!(names.contains(&name.to_owned()), "{coll}: {names:?}");
    }

    let indexes: Vec<String> = db
        .collection::<bson::Document>("users")
        .list_index_names()
        .await
        .unwrap();
    assert!(indexes.contains(&"mobile_unique".to_owned()), "{indexes:?}");
    let dup = db
        .collection::<bson::Document>("users")
        .insert_many([bson::doc! { "mobile": "+1" }, bson::doc! { "mobile": "+1" }])
        .await;
    assert!(dup.is_err(), "unique mobile index enforced");
    for (coll, name) in [
        ("otps", "purge_ttl"),
        ("sessions", "expires_ttl"),
        ("messages", "conversation_history"),
        ("messages", "client_id_unique"),
    ] {
        let names = db
            .collection::<bson::Document>(coll)
            .list_index_names()
            .await
            .unwrap();
        assert!(names.contains(&name.to_owned()), "{coll}: {names:?}");
    }
}

#[tokio::test]
async fn concurrent_runners_apply_each_migration_once() {
    let db = fresh_db().await;
    let runs = futures::future::join_all((0..4).map(|_| migrations::run_pending(&db))).await;
    let total: usize = runs.into_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(total, migrations::all().len());
    let records: Vec<bson::Document> = db
        .collection::<bson::Document>(migrations::COLLECTION)
        .find(bson::doc! { "version": { "$exists": true } })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records.len(), migrations::all().len());
}

#[tokio::test]
async fn ttl_indexes_expire_documents() {
    let db = fresh_db().await;
    migrations::run_pending(&db).await.unwrap();
    let admin = db.client().database("admin");
    admin
        .run_command(bson::doc! { "setParameter": 1, "ttlMonitorSleepSecs": 1 })
        .await
        .unwrap();
    let sessions = db.collection::<bson::Document>("sessions");
    let past = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 10_000);
    sessions
        .insert_one(
            bson::doc! { "_id": "h", "user_id": bson::oid::ObjectId::new(), "expires_at": past },
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while sessions.count_documents(bson::doc! {}).await.unwrap() > 0 {
        assert!(
            started.elapsed().as_secs() < 20,
            "TTL monitor never removed the session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn recovery_log_heads_move_onto_inbox_documents_and_keep_the_larger_one() {
    let db = fresh_db().await;
    let (one, two) = (bson::oid::ObjectId::new(), bson::oid::ObjectId::new());
    let heads = db.collection::<bson::Document>("event_logs");
    heads
        .insert_many([
            bson::doc! { "_id": one, "seq": 41_i64 },
            bson::doc! { "_id": two, "seq": 30_i64 },
        ])
        .await
        .unwrap();
    let locks = db.collection::<bson::Document>("locks");
    let inbox_two = format!("inbox:{}", two.to_hex());
    locks
        .insert_one(bson::doc! {
            "_id": &inbox_two,
            "owner": bson::oid::ObjectId::new(),
            "until": bson::DateTime::from_millis(0),
            "seq": 50_i64,
        })
        .await
        .unwrap();
    migrations::run_pending(&db).await.unwrap();
    let seq_of = async |key: String| {
        let lock = locks
            .find_one(bson::doc! { "_id": key })
            .await
            .unwrap()
            .expect("an inbox document");
        assert!(lock.get_datetime("until").is_ok(), "{lock}");
        lock.get_i64("seq").unwrap()
    };
    assert_eq!(seq_of(format!("inbox:{}", one.to_hex())).await, 41);
    assert_eq!(seq_of(inbox_two).await, 50);
    assert_eq!(heads.count_documents(bson::doc! {}).await.unwrap(), 0);
}
