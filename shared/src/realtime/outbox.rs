//! Posting to connections through @connections: one frame, frames in order, an event to
//! many connections in parallel (framed for each one's protocol), and the first frame of a
//! connection that API Gateway may not have established yet. A 410 (the connection is gone)
//! deletes the connection's record; whatever was being delivered stays for later.

use std::time::Duration;

use futures::future::join_all;

use crate::app::App;
use crate::domain::{ConnectionId, UserId};
use crate::error::{PushError, Result};
use crate::realtime::events::ServerEvent;
use crate::realtime::{connections, recovery};
use crate::store::ConnectionDoc;

/// Posts raw frames to one connection, in order; stops at the first failure. Returns how
/// many were posted. A gone connection's record is deleted.
pub async fn post_frames(app: &App, conn: &ConnectionId, frames: &[String]) -> usize {
    for (i, frame) in frames.iter().enumerate() {
        if post_frame(app, conn, frame.clone()).await.is_err() {
            return i;
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

/// How long to keep trying to post to a connection that does not exist yet: `$connect`
/// returns before API Gateway establishes the connection.
pub const ESTABLISH_WAIT: Duration = Duration::from_secs(5);

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

/// Posts `event` to `user`'s connections `conns` (all of them, or all but the one the
/// event answers), after appending it to the user's recovery log: connections that track
/// offsets get the event's. Logged even when no connection is live, so a device that comes
/// back recovers it. Returns the ids that took it.
pub async fn push(
    app: &App,
    user: UserId,
    conns: &[ConnectionDoc],
    event: &ServerEvent,
) -> Vec<ConnectionId> {
    let offset = log(app, user, event).await;
    post_event(app, conns, event, offset).await
}

/// Appends `event` to `user`'s recovery log; its offset (`None` if it could not be logged:
/// the event still goes out, without one).
pub async fn log(app: &App, user: UserId, event: &ServerEvent) -> Option<i64> {
    log_all(app, user, std::slice::from_ref(event))
        .await
        .into_iter()
        .next()
        .flatten()
}

/// [`log`] for several events, in order (two round trips whatever their number).
pub async fn log_all(app: &App, user: UserId, events: &[ServerEvent]) -> Vec<Option<i64>> {
    match recovery::append_all(app, user, events).await {
        Ok(offsets) => offsets,
        Err(e) => {
            tracing::warn!(error = %e, "could not log events for recovery");
            vec![None; events.len()]
        }
    }
}

/// Posts an event already logged at `offset` to `conns`, in parallel; returns the ids that
/// took it.
async fn post_event(
    app: &App,
    conns: &[ConnectionDoc],
    event: &ServerEvent,
    offset: Option<i64>,
) -> Vec<ConnectionId> {
    let posts = conns.iter().filter_map(|c| {
        let id = c.id()?;
        let frame = event.frame_at(c.protocol, offset.filter(|_| c.offsets));
        Some(async move {
            post_logged(app, c, &[(frame, offset)])
                .await
                .eq(&1)
                .then_some(id)
        })
    });
    join_all(posts).await.into_iter().flatten().collect()
}

/// Posts `event` to every live connection of `user`.
pub async fn push_to_user(app: &App, user: UserId, event: &ServerEvent) -> Result<usize> {
    let conns = connections::of_users(app, &[user]).await?;
    Ok(push(app, user, &conns, event).await.len())
}

/// Posts frames to one connection, in order, each with the log offset of its event (if it
/// has one); stops at the first failure and returns how many were posted. A connection gone
/// before it took an event with an offset ends its recoverable session just before it, so
/// a client that comes back without an offset of its own gets it replayed.
pub async fn post_logged(
    app: &App,
    conn: &ConnectionDoc,
    frames: &[(String, Option<i64>)],
) -> usize {
    let Some(id) = conn.id() else { return 0 };
    for (i, (frame, offset)) in frames.iter().enumerate() {
        let res = app.pusher.post(&id, frame.clone()).await;
        if let Err(e) = res {
            if let (PushError::Gone, Some(pid), Some(offset)) = (&e, &conn.pid, offset)
                && let Err(e) = recovery::ended(app, pid, offset - 1).await
            {
                tracing::warn!(error = %e, "could not record where a session ended");
            }
            forget_if_gone(app, &id, &e).await;
            return i;
        }
    }
    frames.len()
}

/// Ends connections whose login session is over (logout, expiry): a Socket.IO client gets
/// a DISCONNECT packet (so a stock client does not reconnect with the dead token), a
/// plain-JSON client a `system` error `unauthorized`; then the connection is closed and its
/// record removed. Returns how many were ended.
pub async fn end_connections(app: &App, filter: bson::Document) -> Result<usize> {
    let conns = connections::matching(app, filter).await?;
    let ended = join_all(conns.iter().filter_map(|c| c.id().map(|id| (c, id))).map(
        |(c, id)| async move {
            end_connection(app, &id, c.protocol).await;
        },
    ))
    .await;
    Ok(ended.len())
}

/// Says goodbye on one connection whose session is over, closes it and forgets it.
pub async fn end_connection(app: &App, id: &ConnectionId, protocol: crate::store::Protocol) {
    use crate::error::{AuthError, Error};
    use crate::store::Protocol;
    let goodbye = match protocol {
        Protocol::SocketIo => crate::socketio::codec::disconnect("/"),
        Protocol::Json | Protocol::Engine => {
            ServerEvent::error(&Error::Auth(AuthError::Unauthorized), None).frame(protocol)
        }
    };
    let _ = app.pusher.post(id, goodbye).await;
    let _ = app.pusher.close(id).await;
    if let Err(e) = connections::remove(app, id).await {
        tracing::warn!(connection = %id, error = %e, "could not forget an ended connection");
    }
}
