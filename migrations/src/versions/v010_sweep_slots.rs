//! Sweep shards: connection records by slot (a hash of their id), so one shard of the
//! scheduler's sweep reads only its range of slots. Records from before slots have none and
//! belong to the range that starts at 0; they go within API Gateway's 2 hours.

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::Database;

use super::{index, named};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        db.collection::<Document>("connections")
            .create_index(index(doc! { "slot": 1 }, named("slot")))
            .await?;
        Ok(())
    })
}
