//! Text messages through Amazon SNS `Publish` to a phone number (`aws-sdk-sns`): how OTPs
//! reach users with `OTP_MODE=sms`. Locally the endpoint is the local gateway's SNS
//! emulation (`SNS_ENDPOINT`), reached through the same SDK client.
//!
//! A number SNS will not deliver to (invalid, opted out) is the caller's problem
//! ([`SmsError::Undeliverable`]); anything else is the provider's ([`SmsError::Unavailable`]).

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::domain::Mobile;
use crate::error::SmsError;

/// SNS error codes that mean "this number cannot get the message".
const UNDELIVERABLE: &[&str] = &[
    "InvalidParameter",
    "InvalidParameterValue",
    "EndpointDisabled",
    "OptedOut",
];

#[derive(Debug, Clone)]
pub struct Sms {
    client: Client,
}

impl Sms {
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> Self {
        let mut conf = aws_sdk_sns::config::Builder::from(sdk);
        if let Some(endpoint) = endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(conf.build()),
        }
    }

    /// Sends `text` to `to` as a transactional SMS.
    pub async fn send(&self, to: &Mobile, text: &str) -> Result<(), SmsError> {
        let sms_type = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Transactional")
            .build()
            .map_err(|e| SmsError::Unavailable(e.to_string()))?;
        let res = self
            .client
            .publish()
            .phone_number(to.as_str())
            .message(text)
            .message_attributes("AWS.SNS.SMS.SMSType", sms_type)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if e.err().code().is_some_and(|c| UNDELIVERABLE.contains(&c)) =>
            {
                Err(SmsError::Undeliverable)
            }
            Err(e) => Err(SmsError::Unavailable(DisplayErrorContext(&e).to_string())),
        }
    }
}

/// The text of an OTP message.
pub fn otp_text(otp: &str, valid_for_secs: u64) -> String {
    format!(
        "Your chat login code is {otp}. It expires in {} minutes. Do not share it.",
        valid_for_secs.div_ceil(60)
    )
}
