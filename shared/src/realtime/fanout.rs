//! Getting events to connections, and messages to recipients.
//!
//! [`push`] posts one event to many connections in parallel; a 410 from @connections deletes
//! that connection's record. [`deliver_pending`] pushes a recipient's undelivered messages in
//! order under a per-recipient lease (so two deliveries never interleave and a later message
//! never overtakes an earlier one), marks them delivered once at least one of the
//! recipient's connections took them, and tells the senders (`delivered`). A message nobody
//! took stays undelivered: the next delivery, reconnect or sweep tries again.

use std::collections::HashMap;
use std::time::Duration;

use bson::doc;
use futures::TryStreamExt;
use futures::future::join_all;

use crate::api::{DeliveredEvent, MessageEvent};
use crate::app::App;
use crate::domain::{ConnectionId, MessageId, UserId};
use crate::error::{PushError, Result};
use crate::realtime::connections;
use crate::realtime::events::ServerEvent;
use crate::store::{ConnectionDoc, MessageDoc};
use crate::time;

/// Posts raw frames to one connection, in order; stops at the first failure. Returns how
/// many were posted. A gone connection's record is deleted.
pub async fn post_frames(app: &App, conn: &ConnectionId, frames: &[String]) -> usize {
    for (i, frame) in frames.iter().enumerate() {
        match app.pusher.post(conn, frame.clone()).await {
            Ok(()) => {}
            Err(e) => {
                forget_if_gone(app, conn, &e).await;
                return i;
            }
        }
    }
    frames.len()
}

/// Posts one raw frame to one connection.
pub async fn post_frame(
    app: &App,
    conn: &ConnectionId,
    frame: String,
) -> std::result::Result<(), PushError> {
    let res = app.pusher.post(conn, frame).await;
    if let Err(e) = &res {
        forget_if_gone(app, conn, e).await;
    }
    res
}

async fn forget_if_gone(app: &App, conn: &ConnectionId, e: &PushError) {
    match e {
        PushError::Gone => {
            tracing::info!(connection = %conn, "connection gone; forgetting it");
            if let Err(e) = connections::remove(app, conn).await {
                tracing::warn!(error = %e, "could not delete a gone connection's record");
            }
        }
        other => tracing::warn!(connection = %conn, error = %other, "push failed"),
    }
}

/// Posts `event` to every connection given; returns the ids that took it.
pub async fn push(app: &App, conns: &[ConnectionDoc], event: &ServerEvent) -> Vec<ConnectionId> {
    let posts = conns.iter().filter_map(|c| {
        let id = c.id()?;
        let frame = event.frame(c.protocol);
        Some(async move { post_frame(app, &id, frame).await.ok().map(|()| id) })
    });
    join_all(posts).await.into_iter().flatten().collect()
}

/// Posts `event` to every authenticated connection of `users`.
pub async fn push_to_users(app: &App, users: &[UserId], event: &ServerEvent) -> Result<usize> {
    let conns = connections::of_users(app, users).await?;
    Ok(push(app, &conns, event).await.len())
}

pub fn message_event(m: &MessageDoc) -> MessageEvent {
    MessageEvent {
        message_id: MessageId::from_object_id(m.id),
        from: UserId::from_object_id(m.from),
        to: UserId::from_object_id(m.to),
        text: m.text.clone(),
        created_at: time::from_bson(m.created_at),
        client_id: m.client_id.clone(),
    }
}

/// Which undelivered messages a delivery takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Those whose delay has passed, and every older one (order is kept).
    Now,
    /// All of them (the recipient just connected).
    All,
}

const LEASE: Duration = Duration::from_secs(10);
const WAIT_FOR_LEASE: Duration = Duration::from_secs(8);
const BATCH: i64 = 500;

/// Pushes `recipient`'s undelivered messages; returns how many were delivered.
pub async fn deliver_pending(app: &App, recipient: UserId, due: Due) -> Result<usize> {
    let key = format!("inbox:{recipient}");
    let delivered = app
        .store
        .with_lock(&key, LEASE, WAIT_FOR_LEASE, async || {
            deliver_locked(app, recipient, due).await
        })
        .await?;
    let count = delivered.len();
    notify_senders(app, recipient, delivered).await?;
    Ok(count)
}

async fn deliver_locked(
    app: &App,
    recipient: UserId,
    due: Due,
) -> Result<Vec<(MessageDoc, time::Timestamp)>> {
    let pending: Vec<MessageDoc> = app
        .store
        .messages
        .find(doc! { "to": recipient.object_id(), "delivered_at": bson::Bson::Null })
        .sort(doc! { "created_at": 1, "_id": 1 })
        .limit(BATCH)
        .await?
        .try_collect()
        .await?;
    let now = time::now();
    let cut = match due {
        Due::All => pending.len(),
        Due::Now => pending
            .iter()
            .rposition(|m| time::from_bson(m.deliver_after) <= now)
            .map_or(0, |i| i + 1),
    };
    let batch = &pending[..cut];
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let conns = connections::of_users(app, &[recipient]).await?;
    if conns.is_empty() {
        return Ok(Vec::new());
    }
    // Each connection gets the batch in order; connections in parallel. Message i counts as
    // delivered when some connection took frames 0..=i.
    let posts = conns.iter().filter_map(|c| {
        let id = c.id()?;
        let frames: Vec<String> = batch
            .iter()
            .map(|m| ServerEvent::Message(message_event(m)).frame(c.protocol))
            .collect();
        Some(async move { post_frames(app, &id, &frames).await })
    });
    let taken = join_all(posts).await.into_iter().max().unwrap_or(0);
    let delivered = &batch[..taken];
    if delivered.is_empty() {
        return Ok(Vec::new());
    }
    let (at, _) = mark_delivered(app, delivered.iter().map(|m| m.id).collect()).await?;
    Ok(delivered.iter().map(|m| (m.clone(), at)).collect())
}

/// Sets `delivered_at` on those of `messages` not delivered yet; returns the time it set and
/// how many it changed (0 when another delivery got there first).
pub async fn mark_delivered(
    app: &App,
    messages: Vec<bson::oid::ObjectId>,
) -> Result<(time::Timestamp, u64)> {
    let at = time::now();
    let res = app
        .store
        .messages
        .update_many(
            doc! { "_id": { "$in": messages }, "delivered_at": bson::Bson::Null },
            doc! { "$set": { "delivered_at": time::to_bson(at) } },
        )
        .await?;
    Ok((at, res.modified_count))
}

/// `delivered` to each sender's connections.
async fn notify_senders(
    app: &App,
    recipient: UserId,
    delivered: Vec<(MessageDoc, time::Timestamp)>,
) -> Result<()> {
    if delivered.is_empty() {
        return Ok(());
    }
    let mut senders: Vec<UserId> = delivered
        .iter()
        .map(|(m, _)| UserId::from_object_id(m.from))
        .collect();
    senders.sort();
    senders.dedup();
    let conns = connections::of_users(app, &senders).await?;
    let mut by_user: HashMap<UserId, Vec<ConnectionDoc>> = HashMap::new();
    for c in conns {
        if let Some(u) = c.user() {
            by_user.entry(u).or_default().push(c);
        }
    }
    for (m, at) in delivered {
        let Some(conns) = by_user.get(&UserId::from_object_id(m.from)) else {
            continue;
        };
        let event = ServerEvent::Delivered(DeliveredEvent {
            message_id: MessageId::from_object_id(m.id),
            to: recipient,
            delivered_at: at,
        });
        push(app, conns, &event).await;
    }
    Ok(())
}

/// How many messages wait for `user`.
pub async fn pending_count(app: &App, user: UserId) -> Result<u64> {
    Ok(app
        .store
        .messages
        .count_documents(doc! { "to": user.object_id(), "delivered_at": bson::Bson::Null })
        .await?)
}
