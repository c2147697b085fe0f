//! The inbox: each user's conversation summaries (partner, newest message, unread count),
//! the conversation list built from them, starting a chat by phone number, and reading a
//! conversation in bulk (`read {up_to}`) with live unread counts (`unread` events).
//!
//! A summary per (owner, partner) lives in `conversations` (index `inbox`: owner, last_at,
//! last_id). It changes in two places only: [`note_message`] after a message is stored
//! (both sides' newest message; the recipient's unread count +1) and [`note_read`] after
//! messages are marked read (the reader's count −n, then an `unread` event to the reader's
//! connections). The list is one query on the summaries plus one round of two concurrent
//! `_id $in` queries (the newest messages, so ticks are current, and the partners' names).

use std::collections::HashMap;
use std::time::Duration;

use bson::{DateTime, Document, doc, oid::ObjectId};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;

use crate::api::{
    ConversationStarted, ConversationView, ConversationsPage, DeliveredEvent, MessageView,
    ReadAckEvent, ReadEvent, UnreadEvent, UserSummary,
};
use crate::app::App;
use crate::domain::{MessageId, Mobile, UserId};
use crate::error::{ChatError, Result, StoreError};
use crate::realtime::connections;
use crate::realtime::events::ServerEvent;
use crate::realtime::outbox;
use crate::store::{ConversationDoc, DUPLICATE_KEY, MessageDoc, UserDoc, modify_or_create};
use crate::time;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// Phone-number lookups allowed per user within [`LOOKUP_WINDOW`].
pub const LOOKUP_LIMIT: i64 = 20;
pub const LOOKUP_WINDOW: Duration = Duration::from_secs(15 * 60);

fn key(owner: ObjectId, partner: ObjectId) -> String {
    format!("{}:{}", owner.to_hex(), partner.to_hex())
}

/// Both sides' summaries after `message` was stored (called once, when it was created).
/// Failures are logged, not returned: the message is stored and must not be sent again.
pub async fn note_message(app: &App, message: &MessageDoc) {
    if let Err(e) = bump_both(app, message).await {
        tracing::warn!(error = %e, message = %message.id, "could not update a conversation summary");
    }
}

/// Sets each side's newest message unless a newer one is already there, and adds 1 to the
/// recipient's unread count: one `update` command of two statements (one round trip).
///
/// Newest wins: a statement's filter only matches an older summary (or none: its upsert
/// inserts). When the summary exists with a newer message, the upsert's insert hits the
/// unique `_id`; so does a concurrent first insert. Either way that side is done again on its
/// own by [`bump_existing`].
async fn bump_both(app: &App, m: &MessageDoc) -> Result<()> {
    let sides = [(m.from, m.to, 0_i64), (m.to, m.from, 1_i64)];
    let updates: Vec<Document> = sides
        .iter()
        .map(|&(owner, partner, unread)| {
            doc! {
                "q": { "_id": key(owner, partner), "last_at": { "$lte": m.created_at } },
                "u": {
                    "$set": { "last_id": m.id, "last_at": m.created_at },
                    "$setOnInsert": { "owner": owner, "partner": partner },
                    "$inc": { "unread": unread },
                },
                "upsert": true,
            }
        })
        .collect();
    let reply = app
        .store
        .db
        .run_command(doc! {
            "update": app.store.conversations.name(),
            "updates": updates,
            "ordered": false,
        })
        .await?;
    for index in duplicate_key_statements(&reply)? {
        if let Some(&(owner, partner, unread)) = sides.get(index) {
            bump_existing(app, owner, partner, m, unread).await?;
        }
    }
    Ok(())
}

/// The statements of an `update` command's reply that hit a unique index; any other write
/// error is returned.
fn duplicate_key_statements(reply: &Document) -> Result<Vec<usize>> {
    let Ok(errors) = reply.get_array("writeErrors") else {
        return Ok(Vec::new());
    };
    let mut duplicates = Vec::new();
    for error in errors.iter().filter_map(|e| e.as_document()) {
        let code = error.get_i32("code").unwrap_or_default();
        let index = error
            .get_i32("index")
            .ok()
            .and_then(|i| usize::try_from(i).ok());
        match index {
            Some(i) if code == DUPLICATE_KEY => duplicates.push(i),
            _ => {
                let message = error.get_str("errmsg").unwrap_or("write error");
                return Err(StoreError::Write(format!("{code}: {message}")).into());
            }
        }
    }
    Ok(duplicates)
}

/// [`bump_both`]'s statement for one side when its summary already exists: set the newest
/// message if it is newer, and if the summary has a newer one still, only count.
async fn bump_existing(
    app: &App,
    owner: ObjectId,
    partner: ObjectId,
    m: &MessageDoc,
    unread: i64,
) -> Result<()> {
    let conversations = &app.store.conversations;
    let id = key(owner, partner);
    let updated = conversations
        .update_one(
            doc! { "_id": &id, "last_at": { "$lte": m.created_at } },
            doc! { "$set": { "last_id": m.id, "last_at": m.created_at }, "$inc": { "unread": unread } },
        )
        .await?;
    if updated.matched_count == 0 && unread != 0 {
        conversations
            .update_one(doc! { "_id": &id }, doc! { "$inc": { "unread": unread } })
            .await?;
    }
    Ok(())
}

/// After `n` messages from `partner` were marked read by `reader`: lowers the reader's
/// unread count and tells the reader's connections (their other devices) the new count.
/// Failures are logged: the messages are read whatever happens here.
pub async fn note_read(app: &App, reader: UserId, partner: UserId, n: u64) {
    if n == 0 {
        return;
    }
    if let Err(e) = note_read_inner(app, reader, partner, n).await {
        tracing::warn!(error = %e, "could not update an unread count");
    }
}

async fn note_read_inner(app: &App, reader: UserId, partner: UserId, n: u64) -> Result<()> {
    let id = key(reader.object_id(), partner.object_id());
    let updated = app
        .store
        .conversations
        .find_one_and_update(
            doc! { "_id": &id },
            doc! { "$inc": { "unread": -i64::try_from(n).unwrap_or(i64::MAX) } },
        )
        .return_document(ReturnDocument::After)
        .await?;
    let Some(summary) = updated else {
        return Ok(());
    };
    if summary.unread < 0 {
        // Only a summary that missed messages could go below zero; repair it.
        app.store
            .conversations
            .update_one(
                doc! { "_id": &id, "unread": { "$lt": 0 } },
                doc! { "$set": { "unread": 0 } },
            )
            .await?;
    }
    let event = ServerEvent::Unread(UnreadEvent {
        user_id: partner,
        unread: u64::try_from(summary.unread).unwrap_or(0),
    });
    outbox::push_to_user(app, reader, &event).await?;
    Ok(())
}

/// `read {up_to}`: marks every unread message from the sender of `up_to` to `reader`, up
/// to and including `up_to`, read in one update. The sender gets `delivered` for those never
/// delivered and a `read` receipt for each newly read one, as for single reads; the reader's
/// connections get the new unread count. Returns the ack (`up_to` and its read time).
pub async fn read_up_to(app: &App, reader: UserId, up_to: MessageId) -> Result<ReadAckEvent> {
    let messages = &app.store.messages;
    let target = messages
        .find_one(doc! { "_id": up_to.object_id() })
        .await?
        .ok_or(ChatError::UnknownMessage)?;
    if UserId::from_object_id(target.to) != reader {
        return Err(ChatError::Forbidden.into());
    }
    let sender = UserId::from_object_id(target.from);
    // The conversation index (conv, created_at, _id) bounds the walk.
    let unread: Vec<Document> = messages
        .clone_with_type::<Document>()
        .find(doc! {
            "conv": &target.conv,
            "to": target.to,
            "read_at": bson::Bson::Null,
            "$or": [
                { "created_at": { "$lt": target.created_at } },
                { "created_at": target.created_at, "_id": { "$lte": target.id } },
            ],
        })
        .projection(doc! { "_id": 1, "delivered_at": 1 })
        .sort(doc! { "created_at": 1, "_id": 1 })
        .await?
        .try_collect()
        .await?;
    let now = time::now();
    if unread.is_empty() {
        return Ok(ReadAckEvent {
            message_id: up_to,
            read_at: target.read_at.map_or(now, time::from_bson),
        });
    }
    let ids: Vec<ObjectId> = unread
        .iter()
        .filter_map(|d| d.get_object_id("_id").ok())
        .collect();
    let undelivered: Vec<ObjectId> = unread
        .iter()
        .filter(|d| matches!(d.get("delivered_at"), None | Some(bson::Bson::Null)))
        .filter_map(|d| d.get_object_id("_id").ok())
        .collect();
    let read = messages
        .update_many(
            doc! { "_id": { "$in": &ids }, "read_at": bson::Bson::Null },
            doc! { "$set": { "read_at": time::to_bson(now) } },
        )
        .await?;
    // A message read before any push reached a device was delivered.
    if !undelivered.is_empty() {
        messages
            .update_many(
                doc! { "_id": { "$in": &undelivered }, "delivered_at": bson::Bson::Null },
                doc! { "$set": { "delivered_at": time::to_bson(now) } },
            )
            .await?;
    }
    let (_, receipts) = futures::join!(
        note_read(app, reader, sender, read.modified_count),
        receipts(app, reader, sender, &undelivered, &ids, now)
    );
    if let Err(e) = receipts {
        tracing::warn!(error = %e, "could not send read receipts");
    }
    Ok(ReadAckEvent {
        message_id: up_to,
        read_at: target.read_at.map_or(now, time::from_bson),
    })
}

/// `delivered` then `read` for each message, in order, to the sender's connections.
async fn receipts(
    app: &App,
    reader: UserId,
    sender: UserId,
    delivered: &[ObjectId],
    read: &[ObjectId],
    at: time::Timestamp,
) -> Result<()> {
    // Sent (and logged for recovery) even when no device of the sender is online.
    let conns = connections::of_users(app, &[sender]).await?;
    for id in delivered {
        let event = ServerEvent::Delivered(DeliveredEvent {
            message_id: MessageId::from_object_id(*id),
            to: reader,
            delivered_at: at,
        });
        outbox::push(app, sender, &conns, &event).await;
    }
    for id in read {
        let event = ServerEvent::Read(ReadEvent {
            message_id: MessageId::from_object_id(*id),
            by: reader,
            read_at: at,
        });
        outbox::push(app, sender, &conns, &event).await;
    }
    Ok(())
}

/// The opaque paging cursor: the last entry's `last_at` (ms) and `last_id`.
fn cursor(c: &ConversationDoc) -> String {
    format!("{}.{}", c.last_at.timestamp_millis(), c.last_id.to_hex())
}

fn parse_cursor(raw: &str) -> Result<(DateTime, ObjectId), ChatError> {
    let (ms, id) = raw.split_once('.').ok_or(ChatError::InvalidListCursor)?;
    let ms: i64 = ms.parse().map_err(|_| ChatError::InvalidListCursor)?;
    let id = ObjectId::parse_str(id).map_err(|_| ChatError::InvalidListCursor)?;
    Ok((DateTime::from_millis(ms), id))
}

/// A conversation list request, parsed at the edge: `limit` (1..=200, default 50) and the
/// `before` cursor of the previous page.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery {
    pub limit: u32,
    pub before: Option<(DateTime, ObjectId)>,
}

impl ListQuery {
    /// Parses the raw query parameters.
    pub fn parse(limit: Option<&str>, before: Option<&str>) -> Result<ListQuery> {
        let limit = crate::domain::parse_page_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let before = before.map(parse_cursor).transpose()?;
        Ok(ListQuery { limit, before })
    }
}

/// One page of `me`'s conversations, the most recent first.
pub async fn list(app: &App, me: UserId, q: ListQuery) -> Result<ConversationsPage> {
    let mut filter = doc! { "owner": me.object_id() };
    if let Some((at, id)) = q.before {
        // The range on last_at bounds the index scan (it starts at the cursor); the $or only
        // sorts out the entries of that very millisecond.
        filter.insert("last_at", doc! { "$lte": at });
        filter.insert(
            "$or",
            vec![
                doc! { "last_at": { "$lt": at } },
                doc! { "last_at": at, "last_id": { "$lt": id } },
            ],
        );
    }
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let mut summaries: Vec<ConversationDoc> = app
        .store
        .conversations
        .find(filter)
        .sort(doc! { "last_at": -1, "last_id": -1 })
        .limit(i64::from(limit) + 1)
        .await?
        .try_collect()
        .await?;
    let has_more = summaries.len() > limit as usize;
    summaries.truncate(limit as usize);
    let next_before = if has_more {
        summaries.last().map(cursor)
    } else {
        None
    };
    if summaries.is_empty() {
        return Ok(ConversationsPage {
            conversations: Vec::new(),
            next_before,
            has_more,
        });
    }
    let message_ids: Vec<ObjectId> = summaries.iter().map(|c| c.last_id).collect();
    let partner_ids: Vec<ObjectId> = summaries.iter().map(|c| c.partner).collect();
    let (messages, users) = futures::join!(
        async {
            app.store
                .messages
                .find(doc! { "_id": { "$in": &message_ids } })
                .await?
                .try_collect::<Vec<MessageDoc>>()
                .await
        },
        async {
            app.store
                .users
                .find(doc! { "_id": { "$in": &partner_ids } })
                .projection(doc! { "mobile": 1, "display_name": 1, "created_at": 1 })
                .await?
                .try_collect::<Vec<UserDoc>>()
                .await
        }
    );
    let messages: HashMap<ObjectId, MessageDoc> =
        messages?.into_iter().map(|m| (m.id, m)).collect();
    let users: HashMap<ObjectId, UserDoc> = users?.into_iter().map(|u| (u.id, u)).collect();
    let conversations = summaries
        .iter()
        .filter_map(|c| {
            let m = messages.get(&c.last_id)?;
            let name = users
                .get(&c.partner)
                .map_or("", |u| u.display_name.as_str());
            Some(ConversationView {
                user: UserSummary {
                    user_id: UserId::from_object_id(c.partner),
                    display_name: app.experiments.present_name(name),
                },
                last_message: MessageView::from(m),
                unread: u64::try_from(c.unread).unwrap_or(0),
            })
        })
        .collect();
    Ok(ConversationsPage {
        conversations,
        next_before,
        has_more,
    })
}

/// `POST /chat/conversations`: who has `mobile`, if anyone. Rate limited per caller, since
/// it tells whether a number has an account.
pub async fn start(app: &App, me: UserId, mobile: Mobile) -> Result<ConversationStarted> {
    take_lookup(app, me).await?;
    let user = app
        .store
        .users
        .find_one(doc! { "mobile": mobile.as_str() })
        .await?
        .ok_or(ChatError::UnknownUser)?;
    if user.id == me.object_id() {
        return Err(ChatError::SelfMessage.into());
    }
    Ok(ConversationStarted {
        user: UserSummary {
            user_id: UserId::from_object_id(user.id),
            display_name: app.experiments.present_name(&user.display_name),
        },
    })
}

/// Counts one lookup in the caller's current fixed window (one round trip, two the first
/// time: [`modify_or_create`]); refuses past the limit with the time until the window ends.
async fn take_lookup(app: &App, me: UserId) -> Result<()> {
    let window_ms = i64::try_from(LOOKUP_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let now_ms = time::now().timestamp_millis();
    let window = now_ms.div_euclid(window_ms);
    let ends_ms = (window + 1) * window_ms;
    let id = format!("lookup:{me}:{window}");
    let counted = modify_or_create(
        &app.store.rate_limits.clone_with_type(),
        &id,
        doc! { "$inc": { "n": 1_i64 } },
        || doc! { "_id": &id, "n": 1_i64, "expires_at": DateTime::from_millis(ends_ms) },
        || "lookup limit".to_owned(),
    )
    .await?;
    let n = match counted.get("n") {
        Some(bson::Bson::Int64(n)) => *n,
        Some(bson::Bson::Int32(n)) => i64::from(*n),
        _ => 1,
    };
    if n > LOOKUP_LIMIT {
        let wait_ms = u64::try_from(ends_ms - now_ms).unwrap_or(0);
        return Err(ChatError::LookupRateLimited {
            retry_after: Duration::from_millis(wait_ms.div_ceil(1000) * 1000)
                .max(Duration::from_secs(1)),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ReadArgs;

    #[test]
    fn an_update_reply_names_the_statements_that_hit_a_unique_index() {
        let clean = doc! { "ok": 1, "n": 2, "nModified": 2 };
        assert!(duplicate_key_statements(&clean).expect("clean").is_empty());
        let one = doc! { "ok": 1, "n": 1, "writeErrors": [
            { "index": 1, "code": 11000, "errmsg": "E11000 duplicate key" },
        ] };
        assert_eq!(duplicate_key_statements(&one).expect("duplicate"), vec![1]);
        let other = doc! { "ok": 1, "writeErrors": [
            { "index": 0, "code": 11000, "errmsg": "E11000" },
            { "index": 1, "code": 2, "errmsg": "bad value" },
        ] };
        let err = duplicate_key_statements(&other).expect_err("another write error");
        assert!(err.to_string().contains("2: bad value"), "{err}");
    }

    #[test]
    fn read_takes_message_id_or_up_to() {
        let parse = |v: serde_json::Value| serde_json::from_value::<ReadArgs>(v);
        let one = parse(serde_json::json!({"message_id": "a"})).expect("message_id");
        assert_eq!((one.message_id.as_str(), one.up_to), ("a", None));
        let bulk = parse(serde_json::json!({"up_to": "b"})).expect("up_to");
        assert_eq!(bulk.up_to.as_deref(), Some("b"));
        assert!(parse(serde_json::json!({})).is_err());
        assert!(parse(serde_json::json!({"up_to": 5})).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = ConversationDoc {
            key: "k".into(),
            owner: ObjectId::new(),
            partner: ObjectId::new(),
            last_id: ObjectId::new(),
            last_at: DateTime::from_millis(1_700_000_000_123),
            unread: 0,
        };
        assert_eq!(parse_cursor(&cursor(&c)), Ok((c.last_at, c.last_id)));
        for bad in [
            "",
            "abc",
            "12.",
            ".0123",
            "x.65a1b2c3d4e5f60718293a4b",
            "1.zz",
        ] {
            assert_eq!(
                parse_cursor(bad),
                Err(ChatError::InvalidListCursor),
                "{bad}"
            );
        }
    }
}
