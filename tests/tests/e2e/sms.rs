//! OTPs by text message (`OTP_MODE=sms`, the tests' default): through the SNS SDK client to
//! the local gateway's SNS emulation, never back in the answer; SNS failures become clear
//! errors; the emulated mode still answers with the code.

use harness::client::mobile;
use harness::{EnvOptions, TestEnv};

#[tokio::test]
async fn the_code_goes_by_text_message_and_logs_in() {
    let env = TestEnv::start().await;
    let m = mobile(950);
    let r = env.api.request_otp(&m).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.get("otp").is_none(), "{:?}", r.body);
    assert_eq!(r.body["mobile"], m.as_str());
    let sent = env.gateway.sms.messages(&m);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].0.contains("login code"), "{}", sent[0].0);
    // The outbox over HTTP, as developers and the other clients read it.
    let outbox = env.api.get(&format!("/local/sms/{m}"), None).await;
    assert_eq!(outbox.status, 200);
    assert_eq!(outbox.body["messages"][0]["text"], sent[0].0.as_str());
    let code = env.api.code(&m, &r).await;
    let v = env.api.verify(&m, &code).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    // A second request replaces the code: a new text, and the old code is dead.
    let again = env.api.request_otp(&m).await;
    assert_eq!(env.gateway.sms.messages(&m).len(), 2);
    let new = env.api.code(&m, &again).await;
    assert_eq!(env.api.verify(&m, &new).await.status, 200);
}

#[tokio::test]
async fn sns_failures_are_clear_errors() {
    let env = TestEnv::start().await;
    let refused = mobile(951);
    env.gateway.sms.refuse(&refused);
    let r = env.api.request_otp(&refused).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "undeliverable_mobile"),
        "{:?}",
        r.body
    );
    assert!(env.gateway.sms.messages(&refused).is_empty());

    env.gateway.sms.set_outage(true);
    let r = env.api.request_otp(&mobile(952)).await;
    assert_eq!((r.status, r.code()), (503, "unavailable"), "{:?}", r.body);
    assert!(
        !r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("emulated")
    );
    env.gateway.sms.set_outage(false);
    assert_eq!(env.api.request_otp(&mobile(953)).await.status, 200);
}

#[tokio::test]
async fn emulated_mode_answers_with_the_code() {
    let env = TestEnv::with(EnvOptions::default().var("OTP_MODE", "emulated")).await;
    let m = mobile(954);
    let r = env.api.request_otp(&m).await;
    let otp = r.body["otp"]
        .as_str()
        .expect("the code in the answer")
        .to_owned();
    assert!(env.gateway.sms.messages(&m).is_empty());
    assert_eq!(env.api.verify(&m, &otp).await.status, 200);
}

#[tokio::test]
async fn the_seed_readme_number_logs_in() {
    // `+15551234567`, the seed README's own example: a possible number (country code 1, ten
    // digits), accepted; whether it can be texted is the provider's to say.
    let env = TestEnv::start().await;
    let user = env.api.login("+15551234567").await;
    assert_eq!(user.mobile, "+15551234567");
    let spaced = env.api.request_otp("+1 (555) 123-4567").await;
    assert_eq!(spaced.status, 200, "{:?}", spaced.body);
    assert_eq!(spaced.body["mobile"], "+15551234567");
}
