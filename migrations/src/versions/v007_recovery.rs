//! Connection state recovery: recoverable sessions are forgotten by a TTL index once their
//! window is over. (`event_logs` has no TTL: a user's offsets must never start over.)

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::Database;

use super::{index, ttl};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        db.collection::<Document>("recovery_sessions")
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;
        Ok(())
    })
}
