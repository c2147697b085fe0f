//! Phantom typing (an experiment): now and then the scheduler shows a connected user a
//! `typing` indicator from one of their recent conversation partners who is not really
//! typing, then clears it. Real typing is remembered briefly in `typing` so a phantom never
//! pretends for someone who is typing for real.

use std::time::Duration;

use bson::doc;
use futures::TryStreamExt;

use crate::app::App;
use crate::domain::UserId;
use crate::error::Result;
use crate::time;

/// How long a real `typing: true` counts without a follow-up.
const REAL_TYPING_TTL: Duration = Duration::from_secs(10);

fn key(from: UserId, to: UserId) -> String {
    format!("{from}:{to}")
}

/// Remembers (or forgets) that `from` is really typing to `to`.
pub async fn note_real_typing(app: &App, from: UserId, to: UserId, typing: bool) -> Result<()> {
    if !app.experiments.config().phantom_typing_enabled {
        return Ok(());
    }
    let coll = app.store.db.collection::<bson::Document>("typing");
    if typing {
        let until = time::now() + chrono::TimeDelta::from_std(REAL_TYPING_TTL).unwrap_or_default();
        coll.update_one(
            doc! { "_id": key(from, to) },
            doc! { "$set": { "from": from.object_id(), "to": to.object_id(), "until": time::to_bson(until) } },
        )
        .upsert(true)
        .await?;
    } else {
        coll.delete_one(doc! { "_id": key(from, to) }).await?;
    }
    Ok(())
}

/// Whether `from` is really typing to `to` right now.
pub async fn really_typing(app: &App, from: UserId, to: UserId) -> Result<bool> {
    let coll = app.store.db.collection::<bson::Document>("typing");
    Ok(coll
        .find_one(doc! { "_id": key(from, to), "until": { "$gt": time::to_bson(time::now()) } })
        .await?
        .is_some())
}

/// The users `user` exchanged messages with most recently (newest first, at most `n`).
pub async fn recent_partners(app: &App, user: UserId, n: usize) -> Result<Vec<UserId>> {
    let me = user.object_id();
    let recent: Vec<crate::store::MessageDoc> = app
        .store
        .messages
        .find(doc! { "$or": [ { "from": me }, { "to": me } ] })
        .sort(doc! { "created_at": -1 })
        .limit(50)
        .await?
        .try_collect()
        .await?;
    let mut partners: Vec<UserId> = Vec::new();
    for m in recent {
        let other = UserId::from_object_id(if m.from == me { m.to } else { m.from });
        if other != user && !partners.contains(&other) {
            partners.push(other);
        }
        if partners.len() >= n {
            break;
        }
    }
    Ok(partners)
}
