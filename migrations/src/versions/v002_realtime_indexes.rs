//! Indexes for real time: connections by user (fan-out) and by protocol (heartbeat), a TTL on
//! connection records (API Gateway closes connections after 2 hours), the sweep's index of
//! undelivered messages by due time, and a TTL on remembered real typing.

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::Database;

use super::{index, named, ttl};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        let connections = db.collection::<Document>("connections");
        connections
            .create_index(index(doc! { "user_id": 1 }, named("user")))
            .await?;
        connections
            .create_index(index(doc! { "protocol": 1 }, named("protocol")))
            .await?;
        connections
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;
        db.collection::<Document>("messages")
            .create_index(index(
                doc! { "delivered_at": 1, "deliver_after": 1 },
                named("undelivered_by_due_time"),
            ))
            .await?;
        db.collection::<Document>("typing")
            .create_index(index(doc! { "until": 1 }, ttl("until_ttl")))
            .await?;
        Ok(())
    })
}
