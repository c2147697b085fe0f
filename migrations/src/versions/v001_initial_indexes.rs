//! Every index the REST half needs: unique mobile, TTL on OTPs and sessions, and the
//! conversation index that history queries walk.

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::{Database, options::IndexOptions};

use super::{index, named, ttl, unique};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        db.collection::<Document>("users")
            .create_index(index(doc! { "mobile": 1 }, unique("mobile_unique")))
            .await?;
        // An OTP document stays until its rate-limit window has passed, then TTL removes it.
        db.collection::<Document>("otps")
            .create_index(index(doc! { "purge_at": 1 }, ttl("purge_ttl")))
            .await?;
        db.collection::<Document>("sessions")
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;
        db.collection::<Document>("sessions")
            .create_index(index(doc! { "user_id": 1 }, named("user")))
            .await?;
        let messages = db.collection::<Document>("messages");
        messages
            .create_index(index(
                doc! { "conv": 1, "created_at": -1, "_id": -1 },
                named("conversation_history"),
            ))
            .await?;
        // Idempotent sends: `dedupe` is "<from>:<client_id>", present only when the client
        // gave an id, so the sparse unique index ignores messages without one.
        messages
            .create_index(index(
                doc! { "dedupe": 1 },
                IndexOptions::builder()
                    .name("client_id_unique".to_owned())
                    .unique(true)
                    .sparse(true)
                    .build(),
            ))
            .await?;
        messages
            .create_index(index(
                doc! { "to": 1, "delivered_at": 1, "created_at": 1 },
                named("undelivered_by_recipient"),
            ))
            .await?;
        Ok(())
    })
}
