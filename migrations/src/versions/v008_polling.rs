//! Engine.IO long-polling: a session's queued server packets are read in insertion order
//! (`conn`, `_id`), and forgotten by a TTL index when nobody came to fetch them; the
//! WebSocket connections that probe or took over a polling session are forgotten likewise.

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::Database;

use super::{index, named, ttl};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        let queue = db.collection::<Document>("poll_queue");
        queue
            .create_index(index(doc! { "conn": 1, "_id": 1 }, named("conn_order")))
            .await?;
        queue
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;
        db.collection::<Document>("poll_upgrades")
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;
        Ok(())
    })
}
