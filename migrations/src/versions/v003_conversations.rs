//! The inbox: a `conversations` collection with one summary per (owner, partner) pair (the
//! partner, the last message's id and time, the owner's unread count), its index for the
//! newest-first conversation list, a TTL on `rate_limits` (the phone-number lookup's
//! windows), and a backfill of summaries from the messages already stored.

use std::collections::HashMap;

use bson::{DateTime, Document, doc, oid::ObjectId};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use mongodb::Database;

use super::{index, named, ttl};

/// A summary being rebuilt from the messages.
struct Summary {
    owner: ObjectId,
    partner: ObjectId,
    last_id: ObjectId,
    last_at: DateTime,
    unread: i64,
}

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        let conversations = db.collection::<Document>("conversations");
        // The list walks one owner's summaries newest first; `last_id` breaks ties and is
        // the second half of the paging cursor.
        conversations
            .create_index(index(
                doc! { "owner": 1, "last_at": -1, "last_id": -1 },
                named("inbox"),
            ))
            .await?;
        db.collection::<Document>("rate_limits")
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;

        // Backfill, oldest message first so the last one seen is the newest.
        let mut summaries: HashMap<(ObjectId, ObjectId), Summary> = HashMap::new();
        let mut cursor = db
            .collection::<Document>("messages")
            .find(doc! {})
            .projection(doc! { "from": 1, "to": 1, "created_at": 1, "read_at": 1 })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await?;
        while let Some(m) = cursor.try_next().await? {
            let (Ok(id), Ok(from), Ok(to), Ok(at)) = (
                m.get_object_id("_id"),
                m.get_object_id("from"),
                m.get_object_id("to"),
                m.get_datetime("created_at"),
            ) else {
                continue;
            };
            let unread = matches!(m.get("read_at"), None | Some(bson::Bson::Null));
            for (owner, partner, counts) in [(from, to, false), (to, from, unread)] {
                let s = summaries.entry((owner, partner)).or_insert(Summary {
                    owner,
                    partner,
                    last_id: id,
                    last_at: *at,
                    unread: 0,
                });
                s.last_id = id;
                s.last_at = *at;
                if counts {
                    s.unread += 1;
                }
            }
        }
        for s in summaries.into_values() {
            conversations
                .replace_one(
                    doc! { "_id": format!("{}:{}", s.owner.to_hex(), s.partner.to_hex()) },
                    doc! {
                        "owner": s.owner,
                        "partner": s.partner,
                        "last_id": s.last_id,
                        "last_at": s.last_at,
                        "unread": s.unread,
                    },
                )
                .upsert(true)
                .await?;
        }
        Ok(())
    })
}
