//! Posting to connections through @connections: one frame, frames in order, an event to
//! many connections in parallel (framed for each one's protocol), and the first frame of a
//! connection that API Gateway may not have established yet. A 410 (the connection is gone)
//! deletes the connection's record; whatever was being delivered stays for later.

use std::time::Duration;

use futures::future::join_all;

use crate::app::App;
use crate::domain::{ConnectionId, UserId};
use crate::error::{PushError, Result};
use crate::realtime::connections;
use crate::realtime::events::ServerEvent;
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

/// Ends connections whose login session is over (logout, expiry): a Socket.IO client gets
/// a DISCONNECT packet (so a stock client does not reconnect with the dead token), a
/// plain-JSON client a `system` error `unauthorized`; then the connection is closed and its
/// record removed. Returns how many were ended.
pub async fn end_connections(app: &App, filter: bson::Document) -> Result<usize> {
    use futures::TryStreamExt;
    let conns: Vec<ConnectionDoc> = app
        .store
        .connections
        .find(filter)
        .await?
        .try_collect()
        .await?;
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
