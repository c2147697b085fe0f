//! Browser origins: the HTTP API's CORS (answered by the gateway as API Gateway answers it
//! from the template's `CorsConfiguration`) and the WebSocket `$connect` `Origin` check
//! share one setting, `CORS_ALLOWED_ORIGINS`.

use harness::client::mobile;
use harness::ws::RawWs;
use harness::{EnvOptions, TestEnv};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const APP: &str = "http://localhost:5173";
const EVIL: &str = "https://evil.example.com";

async fn env() -> TestEnv {
    TestEnv::with(EnvOptions::default().var("CORS_ALLOWED_ORIGINS", APP)).await
}

#[tokio::test]
async fn a_front_end_on_an_allowed_origin_can_call_the_api() {
    let env = env().await;
    let http = reqwest::Client::new();
    let url = format!("{}/users/auth/request_otp", env.api.base);
    let pre = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("PATCH"),
        "{methods}"
    );
    let headers = h["access-control-allow-headers"].to_str().unwrap();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    assert_eq!(h["access-control-max-age"], "600");

    let resp = http
        .post(&url)
        .header("origin", APP)
        .json(&serde_json::json!({ "mobile": mobile(1001) }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], APP);
    // Error answers carry it too, so the front end can read them.
    let resp = http
        .get(format!("{}/users/me", env.api.base))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["access-control-allow-origin"], APP);
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let env = env().await;
    let http = reqwest::Client::new();
    let url = format!("{}/users/auth/request_otp", env.api.base);
    let pre = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", EVIL)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    // An allowed origin asking for a method the API does not allow gets none either.
    let pre = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", APP)
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    let resp = http
        .post(&url)
        .header("origin", EVIL)
        .json(&serde_json::json!({ "mobile": mobile(1002) }))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn websocket_handshakes_check_origin() {
    let env = env().await;
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", env.ws_url(""));
    let with_origin = |origin: &str| {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    match tokio_tungstenite::connect_async(with_origin(EVIL)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    assert!(
        tokio_tungstenite::connect_async(with_origin(APP))
            .await
            .is_ok()
    );
    // No Origin: not a browser, allowed.
    assert!(RawWs::connect(&url).await.is_ok());
}

#[tokio::test]
async fn aws_service_endpoints_are_not_on_the_public_listener() {
    let env = TestEnv::start().await;
    let http = reqwest::Client::new();
    let stage = &env.gateway.stage;
    let public = env.api.base.clone();
    let mgmt = env.gateway.management_url();
    assert!(env.gateway.management_addr.ip().is_loopback());
    // On the APIs' listener these paths are nobody's routes.
    for (method, path) in [
        (reqwest::Method::POST, format!("/{stage}/@connections/abc")),
        (
            reqwest::Method::DELETE,
            format!("/{stage}/@connections/abc"),
        ),
        (
            reqwest::Method::POST,
            "/2015-03-31/functions/scheduler/invocations".to_owned(),
        ),
        (reqwest::Method::POST, "/_aws/sns/".to_owned()),
    ] {
        let r = http
            .request(method.clone(), format!("{public}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    // On the loopback listener they answer as AWS does (an unknown connection is 410).
    let r = http
        .post(format!("{mgmt}/{stage}/@connections/abc"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
}
