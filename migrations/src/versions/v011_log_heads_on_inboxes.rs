//! A user's recovery-log head moves from `event_logs` onto their inbox lease's document in
//! `locks` (`_id` `inbox:<user id>`, field `seq`), so a send can take its message's offset
//! with the lease in one round trip. The heads are copied over (`$max`, so a re-run or a
//! head already advanced there keeps the larger one) and `event_logs` is dropped. `locks`
//! loses its TTL index: a head must never start over, so an inbox's document stays (one per
//! user, as `event_logs` did).
//!
//! An instance of the old code still running during a deploy advances `event_logs` after the
//! copy; a client recovering across that gets a new session (its welcome and the undelivered
//! backlog), so no message is lost.

use bson::{Document, doc, oid::ObjectId};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use mongodb::Database;

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        let locks = db.collection::<Document>("locks");
        let indexes = locks.list_index_names().await.unwrap_or_default();
        if indexes.iter().any(|n| n == "until_ttl") {
            locks.drop_index("until_ttl").await?;
        }
        let heads = db.collection::<Document>("event_logs");
        let mut cursor = heads.find(doc! {}).await?;
        while let Some(head) = cursor.try_next().await? {
            let (Ok(user), Some(seq)) = (head.get_object_id("_id"), head.get("seq").cloned())
            else {
                continue;
            };
            locks
                .update_one(
                    doc! { "_id": format!("inbox:{}", user.to_hex()) },
                    doc! {
                        "$max": { "seq": seq },
                        "$setOnInsert": {
                            "owner": ObjectId::new(),
                            "until": bson::DateTime::from_millis(0),
                            "settled": false,
                        },
                    },
                )
                .upsert(true)
                .await?;
        }
        heads.drop().await?;
        Ok(())
    })
}
