//! Conversations: storing messages (idempotent per sender `client_id`), paging through
//! history, marking messages read. Real-time fan-out lives in `realtime`; this module is
//! what both the socket events and the REST history call.

use bson::{Document, doc};
use futures::TryStreamExt;

use crate::api::{HistoryPage, MessageView};
use crate::app::App;
use crate::domain::{ClientMsgId, MessageId, MessageText, UserId, conversation_key};
use crate::error::{ChatError, Result};
use crate::store::{MessageDoc, is_duplicate_key};
use crate::time::{self, Timestamp};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

impl From<&MessageDoc> for MessageView {
    fn from(m: &MessageDoc) -> Self {
        MessageView {
            message_id: MessageId::from_object_id(m.id),
            from: UserId::from_object_id(m.from),
            to: UserId::from_object_id(m.to),
            text: m.text.clone(),
            created_at: time::from_bson(m.created_at),
            delivered_at: m.delivered_at.map(time::from_bson),
            read_at: m.read_at.map(time::from_bson),
            client_id: m.client_id.clone(),
        }
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub from: UserId,
    pub to: UserId,
    pub text: MessageText,
    pub client_id: Option<ClientMsgId>,
}

/// The stored message and whether this call created it (false: a retry of an earlier send
/// with the same `client_id`, which returns the original).
#[derive(Debug, Clone)]
pub struct Stored {
    pub message: MessageDoc,
    pub created: bool,
}

/// Stores a message created at `created_at` (the caller holds the recipient's inbox, which
/// orders it), not to be pushed before `deliver_after` (latency illusion). The same
/// `client_id` from the same sender returns the original message, unless the original has
/// another recipient or text: that is a conflict, and nothing is stored.
pub async fn store_message(
    app: &App,
    new: NewMessage,
    created_at: Timestamp,
    deliver_after: Option<Timestamp>,
) -> Result<Stored> {
    if new.from == new.to {
        return Err(ChatError::SelfMessage.into());
    }
    if !crate::users::exists(app, new.to).await? {
        return Err(ChatError::UnknownUser.into());
    }
    let dedupe = new
        .client_id
        .as_ref()
        .map(|c| format!("{}:{}", new.from, c.as_str()));
    let message = MessageDoc {
        id: bson::oid::ObjectId::new(),
        conv: conversation_key(&new.from, &new.to),
        from: new.from.object_id(),
        to: new.to.object_id(),
        text: new.text.as_str().to_owned(),
        client_id: new.client_id.map(|c| c.as_str().to_owned()),
        dedupe: dedupe.clone(),
        created_at: time::to_bson(created_at),
        deliver_after: time::to_bson(deliver_after.unwrap_or(created_at).max(created_at)),
        delivered_at: None,
        read_at: None,
    };
    match app.store.messages.insert_one(&message).await {
        Ok(_) => {
            crate::conversations::note_message(app, &message).await;
            Ok(Stored {
                message,
                created: true,
            })
        }
        Err(e) if is_duplicate_key(&e) => {
            let original = match &dedupe {
                Some(key) => app.store.messages.find_one(doc! { "dedupe": key }).await?,
                None => None,
            };
            match original {
                Some(original) if original.to == message.to && original.text == message.text => {
                    Ok(Stored {
                        message: original,
                        created: false,
                    })
                }
                Some(_) => Err(ChatError::ClientIdConflict.into()),
                None => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Options of a history request.
#[derive(Debug, Clone, Copy)]
pub struct HistoryQuery {
    pub limit: u32,
    pub before: Option<MessageId>,
    /// `?order=strict`: never apply artistic chronology.
    pub strict: bool,
}

impl HistoryQuery {
    /// `?limit=` (1..=200, default 50), `?before=<message_id>`, `?order=strict`, parsed at
    /// the edge.
    pub fn parse(
        limit: Option<&str>,
        before: Option<&str>,
        order: Option<&str>,
    ) -> Result<HistoryQuery, crate::error::InputError> {
        use crate::error::InputError;
        Ok(HistoryQuery {
            limit: crate::domain::parse_page_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)?,
            before: before.map(MessageId::parse).transpose()?,
            strict: match order {
                None => false,
                Some("strict") => true,
                Some(_) => return Err(InputError::InvalidOrder),
            },
        })
    }
}

/// One page of the conversation between `me` and `other`, oldest first.
pub async fn history(app: &App, me: UserId, other: UserId, q: HistoryQuery) -> Result<HistoryPage> {
    if other != me && !crate::users::exists(app, other).await? {
        return Err(ChatError::UnknownUser.into());
    }
    let conv = conversation_key(&me, &other);
    let mut filter = doc! { "conv": &conv };
    if let Some(before) = q.before {
        let cursor = app
            .store
            .messages
            .clone_with_type::<Document>()
            .find_one(doc! { "_id": before.object_id(), "conv": &conv })
            .projection(doc! { "created_at": 1 })
            .await?
            .ok_or(ChatError::InvalidCursor)?;
        let at = cursor
            .get_datetime("created_at")
            .map_err(|_| ChatError::InvalidCursor)?;
        filter.insert(
            "$or",
            vec![
                doc! { "created_at": { "$lt": at } },
                doc! { "created_at": at, "_id": { "$lt": before.object_id() } },
            ],
        );
    }
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let mut docs: Vec<MessageDoc> = app
        .store
        .messages
        .find(filter)
        .sort(doc! { "created_at": -1, "_id": -1 })
        .limit(i64::from(limit) + 1)
        .await?
        .try_collect()
        .await?;
    let has_more = docs.len() > limit as usize;
    docs.truncate(limit as usize);
    docs.reverse();
    // The cursor comes from the strict order, so chronology can never make a page skip or
    // repeat a message.
    let next_before = if has_more {
        docs.first().map(|m| MessageId::from_object_id(m.id))
    } else {
        None
    };
    let strict: Vec<MessageView> = docs.iter().map(MessageView::from).collect();
    let messages = if q.strict {
        strict
    } else {
        let times: Vec<i64> = strict
            .iter()
            .map(|m| m.created_at.timestamp_millis())
            .collect();
        let order = app.experiments.chronology(&times);
        order.into_iter().map(|i| strict[i].clone()).collect()
    };
    Ok(HistoryPage {
        messages,
        next_before,
        has_more,
    })
}
