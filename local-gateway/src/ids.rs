//! Identifiers shaped like API Gateway's: connection ids (`L0SM9cOFvHcCIhw=`), request ids,
//! and the fixed account and API ids the local stage reports.

use rand::Rng;
use rand::distr::Alphanumeric;

pub const ACCOUNT_ID: &str = "123456789012";
pub const HTTP_API_ID: &str = "localhttp";
pub const WS_API_ID: &str = "localwsapi";

fn alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// 16 characters ending in `=`, like API Gateway's.
pub fn connection_id() -> String {
    format!("{}=", alnum(15))
}

/// A UUID-shaped request id.
pub fn request_id() -> String {
    let h = |n| alnum(n).to_ascii_lowercase();
    format!("{}-{}-{}-{}-{}", h(8), h(4), h(4), h(4), h(12))
}

/// API Gateway's `extendedRequestId`.
pub fn extended_request_id() -> String {
    format!("{}=", alnum(15))
}

/// The ARN a function is invoked as (the Lambda context's `invoked_function_arn`).
pub fn function_arn(function: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{function}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_look_like_api_gateway_ones() {
        let id = connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert!(shared::domain::ConnectionId::parse(&id).is_ok());
        assert_ne!(id, connection_id());
    }
}
