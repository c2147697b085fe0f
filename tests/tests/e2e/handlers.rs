//! Handler tests fed with recorded API Gateway event JSON (the documented HTTP API payload
//! v2 shape), handed to the function as the Lambda runtime does (through `lambda_http`),
//! without the gateway.

use harness::TestEnv;
use serde_json::Value;

async fn invoke(env: &TestEnv, event: Value) -> Value {
    shared::lambda::invoke_http(
        env.app(),
        http_request_otp::handler,
        event,
        lambda_runtime::Context::default(),
    )
    .await
    .expect("the function answers")
}

#[tokio::test]
async fn request_otp_handler_reads_a_recorded_event() {
    let env = TestEnv::start().await;
    let raw = include_str!("../../fixtures/http-request-otp.json");
    let resp = invoke(&env, serde_json::from_str(raw).unwrap()).await;
    assert_eq!(resp["statusCode"], 200);
    assert_eq!(resp["headers"]["content-type"], "application/json");
    let v: Value = serde_json::from_str(resp["body"].as_str().expect("text body")).unwrap();
    assert_eq!(v["mobile"], "+14155552671");
    // OTP_MODE=sms: the code went by text message (the gateway's SNS emulation), not back.
    assert!(v.get("otp").is_none(), "{v}");
    let sent = env.gateway.sms.messages("+14155552671");
    let code = test_client::rest::otp_in(&sent.last().expect("a text message").0);
    assert_eq!(code.map(|c| c.len()), Some(6));
}

#[tokio::test]
async fn request_otp_handler_base64_body_and_bad_json() {
    let env = TestEnv::start().await;
    let raw = include_str!("../../fixtures/http-request-otp.json");
    let mut event: Value = serde_json::from_str(raw).unwrap();
    event["isBase64Encoded"] = true.into();
    event["body"] = "eyJtb2JpbGUiOiIrMTQxNTU1NTI2NzEifQ==".into();
    assert_eq!(invoke(&env, event.clone()).await["statusCode"], 200);
    // base64 of `{"mobile":` (cut short): a clear 400, not a failure.
    event["body"] = "eyJtb2JpbGUiOg==".into();
    let resp = invoke(&env, event).await;
    assert_eq!(resp["statusCode"], 400);
    let v: Value = serde_json::from_str(resp["body"].as_str().expect("text body")).unwrap();
    assert_eq!(v["error"]["code"], "malformed_json");
}
