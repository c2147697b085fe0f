//! Pushing to WebSocket connections through the API Gateway @connections management API
//! (`aws-sdk-apigatewaymanagement`): post a frame, close a connection.
//!
//! A 410 (GoneException) means the connection is dead; callers delete its record and keep
//! whatever they were delivering for later. Locally the endpoint is the local gateway's own
//! @connections API, reached through the same SDK client.

use aws_sdk_apigatewaymanagement::{
    Client,
    error::{DisplayErrorContext, SdkError},
    operation::{
        delete_connection::DeleteConnectionError, post_to_connection::PostToConnectionError,
    },
    primitives::Blob,
};

use crate::domain::ConnectionId;
use crate::error::PushError;

#[derive(Debug, Clone)]
pub struct Pusher {
    client: Option<Client>,
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
        Self { client }
    }

    fn client(&self) -> Result<&Client, PushError> {
        self.client
            .as_ref()
            .ok_or_else(|| PushError::Management("WS_ENDPOINT is not configured".into()))
    }

    /// Posts one WebSocket text frame.
    pub async fn post(&self, connection: &ConnectionId, frame: String) -> Result<(), PushError> {
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
    pub async fn close(&self, connection: &ConnectionId) -> Result<(), PushError> {
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
