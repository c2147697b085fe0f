//! The Socket.IO runtime's [`Env`] on this service's infrastructure: sessions are the
//! `connections` records in MongoDB, the outbox is @connections, deferred work is an
//! asynchronous invoke of the scheduler (`Task::Open`).

use bson::doc;

use crate::app::App;
use crate::domain::{ConnectionId, SlotRange, UserId};
use crate::error::{Error, PushError};
use crate::realtime::{connections, outbox};
use crate::socketio::runtime::{EngineConfig, Env, Joined, Partial, SendError, SessionState, Sid};
use crate::store::{ConnectionDoc, NamespaceJoin, PartialPacket, Protocol};
use crate::task::Task;
use crate::time;

/// The runtime's world for one invocation: the function's `App`, the protocol new
/// connections speak (the chat's Socket.IO, or the conformance server's bare Engine.IO), and
/// the sweep slots whose connections the heartbeat looks after (all, unless sharded).
#[derive(Debug, Clone, Copy)]
pub struct AppEnv<'a> {
    pub app: &'a App,
    pub protocol: Protocol,
    pub slots: SlotRange,
}

impl<'a> AppEnv<'a> {
    pub fn new(app: &'a App) -> Self {
        Self::with_protocol(app, Protocol::SocketIo)
    }

    pub fn with_protocol(app: &'a App, protocol: Protocol) -> Self {
        Self {
            app,
            protocol,
            slots: SlotRange::ALL,
        }
    }

    /// The world of one sweep shard: the heartbeat only sees connections in `slots`.
    pub fn sweeping(app: &'a App, slots: SlotRange) -> Self {
        Self {
            slots,
            ..Self::new(app)
        }
    }
}

/// The Engine.IO settings of `app`'s configuration.
pub fn engine_config(app: &App) -> EngineConfig {
    let ws = &app.config.ws;
    EngineConfig {
        ping_interval: ws.ping_interval,
        ping_timeout: ws.ping_timeout,
        max_payload: u64::from(ws.max_payload),
        connect_timeout: ws.connect_timeout,
        establish_wait: outbox::ESTABLISH_WAIT,
    }
}

/// The runtime's view of a connection record.
pub fn state_of(doc: &ConnectionDoc) -> SessionState {
    SessionState {
        // A record written before sids were `engineioxide-core`'s gets a fresh one.
        eio_sid: doc
            .eio_sid
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
        socket_io: doc.protocol == Protocol::SocketIo,
        namespaces: doc
            .namespaces
            .iter()
            .map(|j| Joined {
                ns: j.ns.clone(),
                sid: j.sid.clone(),
            })
            .collect(),
        principal: doc.user_id.map(|u| u.to_hex()),
        partial: doc.partial.as_ref().map(|p| Partial {
            header: p.header.clone(),
            expected: usize::try_from(p.expected).unwrap_or(0),
            attachments: p.attachments.iter().map(|b| b.bytes.clone()).collect(),
        }),
        opened: doc.opened,
        joined_once: doc.joined_once,
        connected_at_ms: doc.connected_at.timestamp_millis(),
        last_seen_ms: doc.last_seen.timestamp_millis(),
        last_ping_ms: doc.last_ping.map(|t| t.timestamp_millis()),
        long_polling: doc.id().is_some_and(|id| id.is_polling()) && doc.ws_id.is_none(),
    }
}

fn send_error(e: PushError) -> SendError {
    match e {
        PushError::Gone => SendError::Gone,
        other => SendError::Failed(other.to_string()),
    }
}

impl Env for AppEnv<'_> {
    type Error = Error;

    async fn create(&self, id: &ConnectionId, eio_sid: Sid) -> Result<(), Error> {
        connections::register(
            self.app,
            id,
            self.protocol,
            None,
            Some(eio_sid.to_string()),
            None,
        )
        .await
    }

    async fn claim_open(&self, id: &ConnectionId) -> Result<Option<SessionState>, Error> {
        let now = time::to_bson(time::now());
        let claimed = self
            .app
            .store
            .connections
            .find_one_and_update(
                doc! { "_id": id.as_str(), "opened": false },
                doc! { "$set": { "opened": true, "last_ping": now, "last_seen": now } },
            )
            .return_document(mongodb::options::ReturnDocument::After)
            .await?;
        Ok(claimed.as_ref().map(state_of))
    }

    async fn join(
        &self,
        id: &ConnectionId,
        joined: &Joined,
        principal: Option<&str>,
    ) -> Result<bool, Error> {
        let user = principal.map(UserId::parse).transpose()?;
        connections::join(
            self.app,
            id,
            user,
            &NamespaceJoin {
                ns: joined.ns.clone(),
                sid: joined.sid.clone(),
            },
        )
        .await
    }

    async fn leave(&self, id: &ConnectionId, ns: &str) -> Result<(), Error> {
        connections::leave(self.app, id, ns).await
    }

    /// A long-polling session that upgraded also loses its WebSocket connection.
    async fn forget(&self, id: &ConnectionId) -> Result<(), Error> {
        let carrier = if id.is_polling() {
            connections::get(self.app, id)
                .await?
                .and_then(|d| d.ws_id)
                .and_then(|ws| ConnectionId::parse(&ws).ok())
        } else {
            None
        };
        connections::remove(self.app, id).await?;
        if let Some(ws) = carrier {
            let _ = self.app.pusher.close(&ws).await;
        }
        Ok(())
    }

    async fn touch(&self, id: &ConnectionId) -> Result<(), Error> {
        connections::touch(self.app, id).await
    }

    async fn set_partial(&self, id: &ConnectionId, partial: Option<&Partial>) -> Result<(), Error> {
        let stored = partial.map(|p| PartialPacket {
            header: p.header.clone(),
            expected: i64::try_from(p.expected).unwrap_or(i64::MAX),
            attachments: p
                .attachments
                .iter()
                .map(|b| bson::Binary {
                    subtype: bson::spec::BinarySubtype::Generic,
                    bytes: b.clone(),
                })
                .collect(),
        });
        connections::set_partial(self.app, id, stored.as_ref()).await
    }

    async fn next_ack_id(&self, id: &ConnectionId) -> Result<i64, Error> {
        connections::next_ack_id(self.app, id).await
    }

    async fn engine_sessions(&self) -> Result<Vec<(ConnectionId, SessionState)>, Error> {
        let docs = connections::speaking(
            self.app,
            &[Protocol::SocketIo, Protocol::Engine],
            self.slots,
        )
        .await?;
        Ok(docs
            .iter()
            .filter_map(|d| Some((d.id()?, state_of(d))))
            .collect())
    }

    async fn pinged(&self, ids: &[ConnectionId], at_ms: i64) -> Result<(), Error> {
        let ids: Vec<&str> = ids.iter().map(ConnectionId::as_str).collect();
        self.app
            .store
            .connections
            .update_many(
                doc! { "_id": { "$in": ids } },
                doc! { "$set": { "last_ping": bson::DateTime::from_millis(at_ms) } },
            )
            .await?;
        Ok(())
    }

    /// A plain post: a 410 is the runtime's to interpret (just after the handshake it means
    /// "not established yet", so the record must stay).
    async fn send(&self, id: &ConnectionId, frame: String) -> Result<(), SendError> {
        self.app.pusher.post(id, frame).await.map_err(send_error)
    }

    async fn send_binary(&self, id: &ConnectionId, bytes: Vec<u8>) -> Result<(), SendError> {
        self.app
            .pusher
            .post_binary(id, bytes)
            .await
            .map_err(send_error)
    }

    async fn close(&self, id: &ConnectionId) -> Result<(), SendError> {
        self.app.pusher.close(id).await.map_err(send_error)
    }

    async fn open_later(&self, id: &ConnectionId) -> Result<(), Error> {
        self.app
            .invoker
            .invoke_async(&Task::Open {
                connection_id: id.clone(),
            })
            .await?;
        Ok(())
    }

    fn now_ms(&self) -> i64 {
        time::now().timestamp_millis()
    }
}
