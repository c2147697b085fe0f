//! Asynchronous invocation of the scheduler function (Lambda `Invoke` with
//! `InvocationType=Event`) through `aws-sdk-lambda`. Locally the local gateway answers the
//! same API.

use aws_sdk_lambda::{Client, error::DisplayErrorContext, primitives::Blob, types::InvocationType};
use serde::Serialize;

use crate::error::PushError;

#[derive(Debug, Clone)]
pub struct Invoker {
    client: Client,
    function: String,
}

impl Invoker {
    pub fn new(sdk: &aws_config::SdkConfig, function: &str) -> Self {
        Self {
            client: Client::new(sdk),
            function: function.to_owned(),
        }
    }

    /// Queues `payload` for the scheduler and returns as soon as Lambda accepted it (202).
    pub async fn invoke_async<T: Serialize + ?Sized>(&self, payload: &T) -> Result<(), PushError> {
        let body = serde_json::to_vec(payload).map_err(|e| PushError::Invoke(e.to_string()))?;
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(body))
            .send()
            .await
            .map_err(|e| PushError::Invoke(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}
