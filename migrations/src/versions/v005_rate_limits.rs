//! Abuse limits: `rate_limits` holds one counter per key and window, forgotten by a TTL
//! index once its window is over; connections are found by login session (logout closes
//! them) and by session expiry (the sweep closes them).

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::Database;

use super::{index, named, ttl};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        db.collection::<Document>("rate_limits")
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;
        let connections = db.collection::<Document>("connections");
        connections
            .create_index(index(doc! { "session": 1 }, named("by_session")))
            .await?;
        connections
            .create_index(index(
                doc! { "session_expires_at": 1 },
                named("by_session_expiry"),
            ))
            .await?;
        Ok(())
    })
}
