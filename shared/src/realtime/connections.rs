//! The `connections` collection: one record per live WebSocket connection, with the protocol
//! it speaks and, once authenticated, its user. The record is what lets any function (there
//! is no shared memory between Lambda invocations) find a user's connections.

use bson::doc;
use futures::TryStreamExt;

use crate::app::App;
use crate::domain::{Authenticated, ConnectionId, SlotRange, UserId};
use crate::error::Result;
use crate::realtime::recovery;
use crate::store::{ConnectionDoc, NamespaceJoin, PartialPacket, Protocol};
use crate::time;

/// API Gateway closes every connection after 2 hours; the record's TTL follows, with margin.
pub use crate::config::MAX_CONNECTION_AGE;

/// Records a new connection (at `$connect`).
pub async fn register(
    app: &App,
    id: &ConnectionId,
    protocol: Protocol,
    auth: Option<&Authenticated>,
    eio_sid: Option<String>,
    pid: Option<String>,
) -> Result<()> {
    let now = time::now();
    let doc = ConnectionDoc {
        connection_id: id.as_str().to_owned(),
        protocol,
        user_id: auth.map(|a| a.user.object_id()),
        session: auth.map(|a| a.session.clone()),
        session_expires_at: auth.map(|a| time::to_bson(a.expires_at)),
        eio_sid,
        namespaces: Vec::new(),
        connected_at: time::to_bson(now),
        last_seen: time::to_bson(now),
        last_ping: None,
        opened: false,
        live: false,
        joined_once: false,
        acks_sent: 0,
        partial: None,
        // Plain-JSON clients always get offsets (an extra field); Socket.IO clients once
        // they show they implement recovery (`bind_session`).
        offsets: pid.is_some() && protocol == Protocol::Json,
        pid,
        ws_id: None,
        probing: false,
        poll_until: None,
        expires_at: time::to_bson(
            now + chrono::TimeDelta::from_std(MAX_CONNECTION_AGE).unwrap_or_default(),
        ),
        slot: i32::try_from(id.slot()).ok(),
    };
    app.store
        .connections
        .replace_one(doc! { "_id": id.as_str() }, &doc)
        .upsert(true)
        .await?;
    Ok(())
}

pub async fn get(app: &App, id: &ConnectionId) -> Result<Option<ConnectionDoc>> {
    Ok(app
        .store
        .connections
        .find_one(doc! { "_id": id.as_str() })
        .await?)
}

/// The record of a chat connection, from the process's [`SessionCache`] once it is settled
/// (live and authenticated, on the main namespace only for Socket.IO, no packet
/// half-received).
///
/// [`SessionCache`]: crate::app::SessionCache
pub async fn get_settled(app: &App, id: &ConnectionId) -> Result<Option<ConnectionDoc>> {
    if let Some(doc) = app.sessions.get(id.as_str()) {
        return Ok(Some(doc));
    }
    let doc = get(app, id).await?;
    if let Some(d) = &doc {
        let settled = d.live
            && d.user_id.is_some()
            && d.partial.is_none()
            && match d.protocol {
                Protocol::SocketIo => d.namespaces.len() == 1 && d.joined("/"),
                Protocol::Json => true,
                Protocol::Engine => false,
            };
        if settled {
            app.sessions.put(d.connection_id.clone(), d.clone());
        }
    }
    Ok(doc)
}

/// Records the user and login session that authenticated a connection (Socket.IO CONNECT),
/// and its recoverable session: its `pid`, and whether its events carry offsets.
pub async fn bind_session(
    app: &App,
    id: &ConnectionId,
    auth: &Authenticated,
    pid: Option<&str>,
    offsets: bool,
) -> Result<()> {
    let mut set = doc! {
        "user_id": auth.user.object_id(),
        "session": &auth.session,
        "session_expires_at": time::to_bson(auth.expires_at),
        "offsets": offsets,
    };
    if let Some(pid) = pid {
        set.insert("pid", pid);
    }
    app.store
        .connections
        .update_one(doc! { "_id": id.as_str() }, doc! { "$set": set })
        .await?;
    Ok(())
}

/// Undoes [`bind_session`] for a CONNECT that is refused after all.
pub async fn unbind_session(app: &App, id: &ConnectionId) -> Result<()> {
    app.store
        .connections
        .update_one(
            doc! { "_id": id.as_str() },
            doc! { "$set": {
                "user_id": bson::Bson::Null,
                "session": bson::Bson::Null,
                "session_expires_at": bson::Bson::Null,
            } },
        )
        .await?;
    Ok(())
}

/// Binds a Socket.IO connection to its user and records the namespace it joined.
pub async fn join(
    app: &App,
    id: &ConnectionId,
    user: Option<UserId>,
    joined: &NamespaceJoin,
) -> Result<bool> {
    let ns = joined.ns.as_str();
    let join = doc! { "ns": ns, "sid": &joined.sid };
    let mut set = doc! { "joined_once": true };
    if let Some(u) = user {
        set.insert("user_id", u.object_id());
    }
    // Re-joining a namespace replaces its entry: pull, then push.
    let res = app
        .store
        .connections
        .update_one(
            doc! { "_id": id.as_str() },
            doc! { "$pull": { "namespaces": { "ns": ns } } },
        )
        .await?;
    if res.matched_count == 0 {
        return Ok(false);
    }
    let mut update = doc! { "$push": { "namespaces": join } };
    if !set.is_empty() {
        update.insert("$set", set);
    }
    app.store
        .connections
        .update_one(doc! { "_id": id.as_str() }, update)
        .await?;
    Ok(true)
}

/// Lets pushes reach the connection (after its welcome went out).
pub async fn set_live(app: &App, id: &ConnectionId) -> Result<bool> {
    let res = app
        .store
        .connections
        .update_one(
            doc! { "_id": id.as_str() },
            doc! { "$set": { "live": true } },
        )
        .await?;
    Ok(res.matched_count == 1)
}

/// The next id for a server emit that expects an ack (1, 2, … per connection).
pub async fn next_ack_id(app: &App, id: &ConnectionId) -> Result<i64> {
    let doc = app
        .store
        .connections
        .find_one_and_update(
            doc! { "_id": id.as_str() },
            doc! { "$inc": { "acks_sent": 1 } },
        )
        .return_document(mongodb::options::ReturnDocument::After)
        .await?;
    Ok(doc.map_or(1, |d| d.acks_sent))
}

/// Removes a namespace from a Socket.IO connection (client DISCONNECT packet).
pub async fn leave(app: &App, id: &ConnectionId, ns: &str) -> Result<()> {
    app.sessions.forget(id.as_str());
    let mut update = doc! { "$pull": { "namespaces": { "ns": ns } } };
    if ns == "/" {
        update.insert("$set", doc! { "user_id": bson::Bson::Null, "live": false });
    }
    app.store
        .connections
        .update_one(doc! { "_id": id.as_str() }, update)
        .await?;
    Ok(())
}

/// Forgets a connection. If it carried a recoverable session, the session remembers where
/// the connection ended (the head of the user's log now), for a client that comes back
/// without an offset of its own. Returns whether there was a record.
pub async fn remove(app: &App, id: &ConnectionId) -> Result<bool> {
    app.sessions.forget(id.as_str());
    let removed = app
        .store
        .connections
        .find_one_and_delete(doc! { "_id": id.as_str() })
        .await?;
    if let Some(c) = &removed
        && let (Some(pid), Some(user)) = (&c.pid, c.user())
    {
        let head = recovery::head(app, user).await?;
        recovery::ended(app, pid, head).await?;
    }
    Ok(removed.is_some())
}

/// A sign of life (Engine.IO pong).
pub async fn touch(app: &App, id: &ConnectionId) -> Result<()> {
    app.store
        .connections
        .update_one(
            doc! { "_id": id.as_str() },
            doc! { "$set": { "last_seen": time::to_bson(time::now()) } },
        )
        .await?;
    Ok(())
}

/// How many connections are bound to `user` (live, or past authentication and about to be).
pub async fn bound_count(app: &App, user: UserId) -> Result<u64> {
    Ok(app
        .store
        .connections
        .count_documents(doc! { "user_id": user.object_id() })
        .await?)
}

/// Every live, authenticated connection of these users. The query names only `user_id`
/// and `live` is checked here: with both in the filter the database weighs two indexes
/// (`user`, `live_users`) on every call, which measured three times the cost of this one
/// (a user has a handful of connections, so the few not yet live cost nothing to skip).
pub async fn of_users(app: &App, users: &[UserId]) -> Result<Vec<ConnectionDoc>> {
    let ids: Vec<bson::oid::ObjectId> = users.iter().map(UserId::object_id).collect();
    let filter = match ids.as_slice() {
        [one] => doc! { "user_id": one },
        _ => doc! { "user_id": { "$in": ids } },
    };
    let mut conns = matching(app, filter).await?;
    conns.retain(|c| c.live);
    Ok(conns)
}

/// Every connection record matching `filter`.
pub async fn matching(app: &App, filter: bson::Document) -> Result<Vec<ConnectionDoc>> {
    Ok(app
        .store
        .connections
        .find(filter)
        .await?
        .try_collect()
        .await?)
}

/// Every connection speaking one of `protocols`, in the sweep slots `slots`.
pub async fn speaking(
    app: &App,
    protocols: &[Protocol],
    slots: SlotRange,
) -> Result<Vec<ConnectionDoc>> {
    let ps: Vec<bson::Bson> = protocols
        .iter()
        .filter_map(|p| bson::to_bson(p).ok())
        .collect();
    let mut filter = in_slots(slots);
    filter.insert("protocol", doc! { "$in": ps });
    matching(app, filter).await
}

/// The filter for connection records in `slots` (none for all of them). Records from
/// before slots belong to the range that starts at 0.
pub fn in_slots(slots: SlotRange) -> bson::Document {
    let (lo, hi) = (i64::from(slots.lo()), i64::from(slots.hi()));
    if slots.is_all() {
        doc! {}
    } else if lo == 0 {
        doc! { "$or": [ { "slot": { "$lt": hi } }, { "slot": bson::Bson::Null } ] }
    } else {
        doc! { "slot": { "$gte": lo, "$lt": hi } }
    }
}

/// How many connection records are in `slots`.
pub async fn count_in(app: &App, slots: SlotRange) -> Result<u64> {
    Ok(app
        .store
        .connections
        .count_documents(in_slots(slots))
        .await?)
}

/// Records (or forgets) a binary packet waiting for its attachments.
pub async fn set_partial(
    app: &App,
    id: &ConnectionId,
    partial: Option<&PartialPacket>,
) -> Result<()> {
    app.sessions.forget(id.as_str());
    app.store
        .connections
        .update_one(
            doc! { "_id": id.as_str() },
            match partial.and_then(|p| bson::to_bson(p).ok()) {
                Some(p) => doc! { "$set": { "partial": p } },
                None => doc! { "$unset": { "partial": "" } },
            },
        )
        .await?;
    Ok(())
}

impl ConnectionDoc {
    pub fn id(&self) -> Option<ConnectionId> {
        ConnectionId::parse(&self.connection_id).ok()
    }

    pub fn user(&self) -> Option<UserId> {
        self.user_id.map(UserId::from_object_id)
    }

    pub fn joined(&self, ns: &str) -> bool {
        self.namespaces.iter().any(|j| j.ns == ns)
    }

    /// Whether the login session behind the connection has expired.
    pub fn session_expired(&self, now: time::Timestamp) -> bool {
        self.session_expires_at
            .is_some_and(|at| time::from_bson(at) <= now)
    }
}
