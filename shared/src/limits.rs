//! Rate limits kept in MongoDB (every function instance sees the same counts), in
//! `rate_limits`, forgotten by a TTL index once they no longer matter:
//! - [`hit`]: one counter per key and fixed window, bumped atomically (login limits);
//! - [`take`]: a token bucket per key (the per-user event rate): bursts up to `max`, refilled
//!   steadily at `max` per `window`, kept as one timestamp (GCRA) and moved by conditional
//!   updates, so concurrent takers on any instance never overdraw it.

use std::time::Duration;

use bson::doc;

use crate::app::App;
use crate::config::Limit;
use crate::error::{Result, StoreError};
use crate::store::{BucketDoc, RateLimitDoc, is_duplicate_key, modify_or_create};
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
    let expires_at = bson::DateTime::from_millis(end);
    // The key may name a phone number: it stays out of errors and logs.
    let counted = modify_or_create(
        &app.store.rate_limits.clone_with_type(),
        &id,
        doc! { "$inc": { "hits": 1_i64 } },
        || doc! { "_id": &id, "hits": 1_i64, "expires_at": expires_at },
        || "rate limit".to_owned(),
    )
    .await?;
    let hits = bson::from_document::<RateLimitDoc>(counted)
        .map_err(|e| StoreError::Write(format!("rate limit: {e}")))?
        .hits;
    let over = u64::try_from(hits).unwrap_or(0) > limit.max;
    let wait_ms = u64::try_from(end - now).unwrap_or(0).max(1000);
    Ok(over.then(|| Duration::from_millis(wait_ms)))
}

/// Takes one token from the bucket `key` (capacity `limit.max`, refilled at `limit.max` per
/// `limit.window`). `Ok(None)` when there was one, `Ok(Some(wait))` when the bucket is empty
/// and the next token comes in `wait`.
pub async fn take(app: &App, key: &str, limit: Limit) -> Result<Option<Duration>> {
    let window_ms = i64::try_from(limit.window.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let max = i64::try_from(limit.max).unwrap_or(i64::MAX);
    if max == 0 {
        return Ok(Some(limit.window));
    }
    // The emission interval: one token per `interval` ms.
    let interval = (window_ms / max).max(1);
    let id = format!("bucket:{key}");
    let buckets = app.store.rate_limits.clone_with_type::<BucketDoc>();
    for _ in 0..4 {
        let now = time::now().timestamp_millis();
        // Full (or new): start over from now. One round trip in the common case.
        let fresh = buckets
            .update_one(
                doc! { "_id": &id, "tat": { "$lte": now } },
                doc! { "$set": {
                    "tat": now + interval,
                    "expires_at": bson::DateTime::from_millis(now + interval),
                } },
            )
            .upsert(true)
            .await;
        match fresh {
            Ok(_) => return Ok(None),
            // The bucket exists and is not full.
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
        // Not empty yet: take a token by moving `tat` one interval on.
        let limit_tat = now + window_ms - interval;
        let taken = buckets
            .update_one(
                doc! { "_id": &id, "tat": { "$gt": now, "$lte": limit_tat } },
                doc! {
                    "$inc": { "tat": interval },
                    "$max": { "expires_at": bson::DateTime::from_millis(now + window_ms) },
                },
            )
            .await?;
        if taken.matched_count == 1 {
            return Ok(None);
        }
        match buckets.find_one(doc! { "_id": &id }).await? {
            Some(b) if b.tat > limit_tat => {
                let wait = u64::try_from(b.tat - limit_tat).unwrap_or(1).max(1);
                return Ok(Some(Duration::from_millis(wait)));
            }
            // Moved or forgotten meanwhile: try again.
            _ => {}
        }
    }
    Err(StoreError::LockTimeout("rate limit".to_owned()).into())
}
