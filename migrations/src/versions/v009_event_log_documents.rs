//! Connection state recovery keeps one document per logged event (`logged_events`, read by
//! user and offset, forgotten by a TTL index after the recovery window) instead of an array
//! in the user's `event_logs` document, which every append rewrote whole. The counters
//! (`event_logs.seq`) stay, so offsets go on where they were; the old arrays are dropped
//! (a client recovering across this migration gets a new session: its welcome and the
//! undelivered backlog, so no message is lost).

use bson::{Document, doc};
use futures::future::BoxFuture;
use mongodb::Database;

use super::{index, ttl, unique};

pub(crate) fn up(db: Database) -> BoxFuture<'static, mongodb::error::Result<()>> {
    Box::pin(async move {
        let events = db.collection::<Document>("logged_events");
        events
            .create_index(index(
                doc! { "user": 1, "offset": 1 },
                unique("user_offset"),
            ))
            .await?;
        events
            .create_index(index(doc! { "expires_at": 1 }, ttl("expires_ttl")))
            .await?;
        db.collection::<Document>("event_logs")
            .update_many(
                doc! { "events": { "$exists": true } },
                doc! { "$unset": { "events": "" } },
            )
            .await?;
        Ok(())
    })
}
