//! Rate limits kept in MongoDB (every function instance sees the same counts): one counter
//! per key and fixed window in `rate_limits`, bumped atomically; a TTL index forgets it when
//! its window is over.

use std::time::Duration;

use bson::doc;
use mongodb::options::ReturnDocument;

use crate::app::App;
use crate::config::Limit;
use crate::error::{Result, StoreError};
use crate::store::is_duplicate_key;
use crate::time;

/// Counts one hit on `key`. `Ok(None)` when it is within `limit`, `Ok(Some(wait))` when it
/// is over it and the window ends in `wait`.
pub async fn hit(app: &App, key: &str, limit: Limit) -> Result<Option<Duration>> {
    let window_ms = i64::try_from(limit.window.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let now = time::now().timestamp_millis();
    let start = now - now.rem_euclid(window_ms);
    let end = start.saturating_add(window_ms);
    let id = format!("{key}@{start}");
    for _ in 0..3 {
        let res = app
            .store
            .rate_limits
            .find_one_and_update(
                doc! { "_id": &id },
                doc! {
                    "$inc": { "hits": 1_i64 },
                    "$setOnInsert": { "expires_at": bson::DateTime::from_millis(end) },
                },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match res {
            Ok(Some(doc)) => {
                let over = u64::try_from(doc.hits).unwrap_or(0) > limit.max;
                let wait_ms = u64::try_from(end - now).unwrap_or(0).max(1000);
                return Ok(over.then(|| Duration::from_millis(wait_ms)));
            }
            Ok(None) => {}
            // Two first hits at once: one upsert inserted; count again.
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The key may name a phone number: it stays out of errors and logs.
    Err(StoreError::LockTimeout("rate limit".to_owned()).into())
}
