//! Refresh tokens: `refresh_tokens` is forgotten by a TTL index when its login session ends
//! and found by session (`family`) to end it; access tokens are found by session too.

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::Database;

use super::{index, named, ttl};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        let refresh = db.collection::<Document>("refresh_tokens");
        refresh
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;
        refresh
            .create_index(index(doc! { "family": 1 }, named("by_family")))
            .await?;
        refresh
            .create_index(index(doc! { "user_id": 1 }, named("user")))
            .await?;
        db.collection::<Document>("sessions")
            .create_index(index(doc! { "family": 1 }, named("by_family")))
            .await?;
        Ok(())
    })
}
