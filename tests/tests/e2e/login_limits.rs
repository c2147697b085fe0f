//! Abuse limits on logging in, per source IP (the gateway passes the caller's address as
//! API Gateway does; `127.0.0.2` is another caller) and per number.

use std::net::IpAddr;

use harness::client::{Api, mobile};
use harness::{EnvOptions, TestEnv};

fn from(env: &TestEnv, ip: &str) -> Api {
    Api::from_address(env.api.base.clone(), ip.parse::<IpAddr>().unwrap())
}

#[tokio::test]
async fn one_address_cannot_walk_through_many_numbers() {
    let env = TestEnv::with(EnvOptions::default().var("OTP_REQUESTS_PER_IP", "3")).await;
    let a = from(&env, "127.0.0.2");
    for n in 0..3 {
        assert_eq!(a.request_otp(&mobile(960 + n)).await.status, 200);
    }
    let r = a.request_otp(&mobile(963)).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{:?}", r.body);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    // Another address is not affected.
    let b = from(&env, "127.0.0.3");
    assert_eq!(b.request_otp(&mobile(963)).await.status, 200);
}

#[tokio::test]
async fn a_stranger_cannot_lock_a_victim_out() {
    // Production values for the per-number limits.
    let env = TestEnv::start().await;
    let victim = mobile(970);
    let stranger = from(&env, "127.0.0.2");
    for _ in 0..5 {
        assert_eq!(stranger.request_otp(&victim).await.status, 200);
    }
    assert_eq!(stranger.request_otp(&victim).await.code(), "rate_limited");
    // The victim, from their own address, still gets a code and logs in.
    let own = from(&env, "127.0.0.4");
    let user = own.login(&victim).await;
    assert_eq!(user.mobile, victim);
}

#[tokio::test]
async fn one_number_gets_a_bounded_number_of_texts() {
    let env = TestEnv::with(EnvOptions::default().var("OTP_REQUESTS_PER_NUMBER", "4")).await;
    let m = mobile(975);
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        assert_eq!(from(&env, ip).request_otp(&m).await.status, 200);
    }
    let r = from(&env, "127.0.0.6").request_otp(&m).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    assert_eq!(env.gateway.sms.messages(&m).len(), 4);
}

#[tokio::test]
async fn verify_attempts_are_limited_per_address() {
    let env = TestEnv::with(EnvOptions::default().var("VERIFY_ATTEMPTS_PER_IP", "3")).await;
    let a = from(&env, "127.0.0.2");
    for n in 0..3 {
        let m = mobile(980 + n);
        assert_eq!(a.request_otp(&m).await.status, 200);
        assert_eq!(a.verify(&m, "000000").await.code(), "otp_invalid");
    }
    let m = mobile(984);
    let issued = a.request_otp(&m).await;
    let code = a.code(&m, &issued).await;
    let r = a.verify(&m, &code).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{:?}", r.body);
    // The right code from another address works.
    let b = from(&env, "127.0.0.3");
    assert_eq!(b.verify(&m, &code).await.status, 200);
}
