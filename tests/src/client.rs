//! A small REST client for the product's HTTP API, used by the tests.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

/// A REST response: status, headers, and the body parsed as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A logged-in user.
pub type User = test_client::Session;

#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// A client whose requests come from another local address (`127.0.0.2`, ...): another
    /// source IP as far as the gateway can tell.
    pub fn from_address(base: String, ip: std::net::IpAddr) -> Self {
        Self {
            base,
            http: reqwest::Client::builder()
                .local_address(ip)
                .build()
                .unwrap(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.send("POST", path, token, Some(body.to_string())).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send("GET", path, token, None).await
    }

    pub async fn request_otp(&self, mobile: &str) -> Resp {
        self.post("/users/auth/request_otp", None, json!({ "mobile": mobile }))
            .await
    }

    pub async fn verify(&self, mobile: &str, otp: &str) -> Resp {
        self.post(
            "/users/auth/verify",
            None,
            json!({ "mobile": mobile, "otp": otp }),
        )
        .await
    }

    /// The OTP a `request_otp` answer stands for: in the answer with `OTP_MODE=emulated`, else
    /// in the newest text message to `mobile` (the local gateway's SNS outbox).
    pub async fn code(&self, mobile: &str, issued: &Resp) -> String {
        match issued.body["otp"].as_str() {
            Some(otp) => otp.to_owned(),
            None => test_client::rest::sms_code(&self.http, &self.base, mobile)
                .await
                .unwrap(),
        }
    }

    /// request_otp + verify (the shared client's login), asserting both succeed.
    pub async fn login(&self, mobile: &str) -> User {
        test_client::login(&self.http, &self.base, mobile)
            .await
            .unwrap_or_else(|e| panic!("login {mobile}: {e}"))
    }
}

/// A distinct valid mobile number per call (US 415 numbers).
pub fn mobile(n: u32) -> String {
    format!("+1415555{:04}", n % 10_000)
}
