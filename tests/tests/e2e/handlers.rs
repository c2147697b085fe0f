//! Handler tests fed with recorded API Gateway event JSON (the documented HTTP API payload
//! v2 shape), called directly without the gateway.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use harness::TestEnv;

#[tokio::test]
async fn request_otp_handler_reads_a_recorded_event() {
    let env = TestEnv::start().await;
    let raw = include_str!("../../fixtures/http-request-otp.json");
    let event: ApiGatewayV2httpRequest = serde_json::from_str(raw).unwrap();
    let resp = http_request_otp::handler(env.app(), event).await.unwrap();
    assert_eq!(resp.status_code, 200);
    let Some(Body::Text(body)) = resp.body else {
        panic!("text body")
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mobile"], "+14155552671");
    assert_eq!(v["otp"].as_str().map(str::len), Some(6));
}

#[tokio::test]
async fn request_otp_handler_base64_body_and_bad_base64() {
    let env = TestEnv::start().await;
    let raw = include_str!("../../fixtures/http-request-otp.json");
    let mut event: serde_json::Value = serde_json::from_str(raw).unwrap();
    event["isBase64Encoded"] = true.into();
    event["body"] = "eyJtb2JpbGUiOiIrMTQxNTU1NTI2NzEifQ==".into();
    let ev: ApiGatewayV2httpRequest = serde_json::from_value(event.clone()).unwrap();
    assert_eq!(
        http_request_otp::handler(env.app(), ev)
            .await
            .unwrap()
            .status_code,
        200
    );
    event["body"] = "%%%".into();
    let ev: ApiGatewayV2httpRequest = serde_json::from_value(event).unwrap();
    assert_eq!(
        http_request_otp::handler(env.app(), ev)
            .await
            .unwrap()
            .status_code,
        400
    );
}
