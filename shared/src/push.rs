//! Pushing to WebSocket connections through the API Gateway @connections management API
//! (`aws-sdk-apigatewaymanagement`): post a frame, close a connection.
//!
//! A 410 (GoneException) means the connection is dead; callers delete its record and keep
//! whatever they were delivering for later. Locally the endpoint is the local gateway's own
//! @connections API, reached through the same SDK client.
//!
//! A long-polling session ([`ConnectionId::is_polling`]) has no socket to post to: its
//! packets are queued in MongoDB (`poll_queue`) for its next `GET`, or, once it upgraded,
//! posted to the WebSocket connection that carries it now. Callers cannot tell the
//! difference, which is how everything the chat pushes reaches polling clients unchanged.

use aws_sdk_apigatewaymanagement::{
    Client,
    error::{DisplayErrorContext, SdkError},
    operation::{
        delete_connection::DeleteConnectionError, post_to_connection::PostToConnectionError,
    },
    primitives::Blob,
};

use base64::Engine as _;
use bson::{Document, doc, oid::ObjectId};
use mongodb::Collection;

use crate::domain::ConnectionId;
use crate::error::PushError;
use crate::store::{PollPacketDoc, Store};

/// How long a queued packet waits for a `GET` before it is forgotten.
const QUEUED_FOR: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The Engine.IO noop packet: ends a pending `GET` that has nothing else to carry.
pub const NOOP: &str = "6";

#[derive(Debug, Clone)]
pub struct Pusher {
    client: Option<Client>,
    polls: Option<Polls>,
}

/// Where long-polling sessions live.
#[derive(Debug, Clone)]
struct Polls {
    connections: Collection<Document>,
    queue: Collection<PollPacketDoc>,
}

fn db_error(e: mongodb::error::Error) -> PushError {
    PushError::Management(format!("poll queue: {e}"))
}

impl Pusher {
    /// `endpoint` is the WebSocket API's management endpoint (`WS_ENDPOINT`). Without one the
    /// pusher refuses every call (REST functions never push).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> Self {
        let client = endpoint.map(|endpoint| {
            let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
                .endpoint_url(endpoint)
                .build();
            Client::from_conf(conf)
        });
        Self {
            client,
            polls: None,
        }
    }

    /// Lets the pusher reach long-polling sessions (their queue is in `store`).
    pub fn with_polling(mut self, store: &Store) -> Self {
        self.polls = Some(Polls {
            connections: store.connections.clone_with_type(),
            queue: store.poll_queue.clone(),
        });
        self
    }

    fn polls(&self) -> Result<&Polls, PushError> {
        self.polls
            .as_ref()
            .ok_or_else(|| PushError::Management("long-polling is not configured".into()))
    }

    /// The WebSocket connection a polling session upgraded to: `Err(Gone)` when the session
    /// is unknown, `Ok(None)` while it polls.
    async fn upgraded_to(&self, conn: &ConnectionId) -> Result<Option<ConnectionId>, PushError> {
        let record = self
            .polls()?
            .connections
            .find_one(doc! { "_id": conn.as_str() })
            .projection(doc! { "ws_id": 1 })
            .await
            .map_err(db_error)?
            .ok_or(PushError::Gone)?;
        Ok(record
            .get_str("ws_id")
            .ok()
            .and_then(|id| ConnectionId::parse(id).ok()))
    }

    /// Queues one packet (payload encoding: text as is, binary as `b` + base64) for a
    /// polling session, or posts it to the WebSocket connection it upgraded to.
    ///
    /// Queued first, looked up after: a session that upgraded (before or meanwhile) gets
    /// its queue, this packet included, handed over in order; an unknown one is gone (a
    /// packet left behind expires).
    async fn queue(&self, conn: &ConnectionId, packet: String) -> Result<(), PushError> {
        self.enqueue(conn, packet).await?;
        if let Some(ws) = self.upgraded_to(conn).await? {
            self.hand_over(conn, &ws).await?;
        }
        Ok(())
    }

    /// Appends a packet to a polling session's queue, whatever the session's state.
    pub async fn enqueue(&self, conn: &ConnectionId, packet: String) -> Result<(), PushError> {
        let expires_at = bson::DateTime::from_chrono(chrono::Utc::now() + QUEUED_FOR);
        self.polls()?
            .queue
            .insert_one(PollPacketDoc {
                id: ObjectId::new(),
                conn: conn.as_str().to_owned(),
                packet,
                expires_at,
            })
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Posts what is queued for a polling session to the WebSocket connection that took it
    /// over, in order, each packet once (every one is claimed by deleting it).
    pub async fn hand_over(&self, conn: &ConnectionId, ws: &ConnectionId) -> Result<(), PushError> {
        let queue = &self.polls()?.queue;
        while let Some(next) = queue
            .find_one_and_delete(doc! { "conn": conn.as_str() })
            .sort(doc! { "_id": 1 })
            .await
            .map_err(db_error)?
        {
            if next.packet != NOOP {
                self.post_packet(ws, next.packet).await?;
            }
        }
        Ok(())
    }

    /// Posts one packet in the payload encoding to a WebSocket connection.
    async fn post_packet(&self, ws: &ConnectionId, packet: String) -> Result<(), PushError> {
        match packet.strip_prefix('b') {
            Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(bytes) => self.post_binary(ws, bytes).await,
                Err(_) => Ok(()),
            },
            None => self.post(ws, packet).await,
        }
    }

    fn client(&self) -> Result<&Client, PushError> {
        self.client
            .as_ref()
            .ok_or_else(|| PushError::Management("WS_ENDPOINT is not configured".into()))
    }

    /// Posts one WebSocket text frame.
    pub async fn post(&self, connection: &ConnectionId, frame: String) -> Result<(), PushError> {
        if connection.is_polling() {
            return Box::pin(self.queue(connection, frame)).await;
        }
        let res = self
            .client()?
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(frame.into_bytes()))
            .send()
            .await;
        post_outcome(res)
    }

    /// Posts one binary frame. API Gateway WebSocket APIs carry no binary frames (clients
    /// get base64 instead); the header asks the local gateway, where the conformance server
    /// runs, for a binary frame. AWS ignores it.
    pub async fn post_binary(
        &self,
        connection: &ConnectionId,
        data: Vec<u8>,
    ) -> Result<(), PushError> {
        if connection.is_polling() {
            let packet = format!(
                "b{}",
                base64::engine::general_purpose::STANDARD.encode(&data)
            );
            return Box::pin(self.queue(connection, packet)).await;
        }
        let res = self
            .client()?
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(data))
            .customize()
            .mutate_request(|req| {
                req.headers_mut().insert("x-frame-type", "binary");
            })
            .send()
            .await;
        post_outcome(res)
    }

    /// Closes a connection (API Gateway then invokes `$disconnect`). Gone counts as done.
    ///
    /// A polling session gets the close packet for its next `GET` (which then forgets it),
    /// or, once upgraded, its WebSocket connection is closed.
    pub async fn close(&self, connection: &ConnectionId) -> Result<(), PushError> {
        if connection.is_polling() {
            return match self.upgraded_to(connection).await {
                Ok(Some(ws)) => Box::pin(self.close(&ws)).await,
                Ok(None) | Err(PushError::Gone) => self.enqueue(connection, "1".into()).await,
                Err(e) => Err(e),
            };
        }
        let res = self
            .client()?
            .delete_connection()
            .connection_id(connection.as_str())
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteConnectionError::GoneException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(PushError::Management(DisplayErrorContext(&e).to_string())),
        }
    }
}

/// What a `post_to_connection` call means for the caller: 410 is a dead connection, 413 a
/// frame over API Gateway's limit, anything else a management API failure.
fn post_outcome<T, R>(res: Result<T, SdkError<PostToConnectionError, R>>) -> Result<(), PushError>
where
    R: std::fmt::Debug + 'static,
{
    match res {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e)) => match e.err() {
            PostToConnectionError::GoneException(_) => Err(PushError::Gone),
            PostToConnectionError::PayloadTooLargeException(_) => Err(PushError::PayloadTooLarge),
            other => Err(PushError::Management(
                DisplayErrorContext(other).to_string(),
            )),
        },
        Err(e) => Err(PushError::Management(DisplayErrorContext(&e).to_string())),
    }
}
