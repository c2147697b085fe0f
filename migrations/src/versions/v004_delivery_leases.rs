//! Leases that clean up after themselves: a TTL index on `locks.until` forgets a lease an
//! hour after it ran out (one inbox lease per user that ever received a message would
//! otherwise stay forever), and the sweep's index of live connections by user.

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::Database;
use mongodb::options::IndexOptions;

use super::{index, named};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        db.collection::<Document>("locks")
            .create_index(index(
                doc! { "until": 1 },
                IndexOptions::builder()
                    .name("until_ttl".to_owned())
                    .expire_after(std::time::Duration::from_secs(3600))
                    .build(),
            ))
            .await?;
        db.collection::<Document>("connections")
            .create_index(index(doc! { "live": 1, "user_id": 1 }, named("live_users")))
            .await?;
        Ok(())
    })
}
