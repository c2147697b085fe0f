//! The REST login, as a client does it: `request_otp`, then `verify` with the code the local
//! emulation returns.

use anyhow::anyhow;
use serde_json::{Value, json};

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub mobile: String,
    pub token: String,
    pub user_id: String,
    pub display_name: String,
}

/// A valid, random US mobile number (area codes that libphonenumber accepts).
pub fn random_mobile() -> String {
    const AREAS: [u32; 12] = [201, 212, 305, 312, 415, 503, 617, 646, 702, 718, 917, 949];
    let area = AREAS[rand::random_range(0..AREAS.len())];
    let exchange = rand::random_range(200..1000u32);
    let line = rand::random_range(0..10_000u32);
    format!("+1{area}{exchange:03}{line:04}")
}

fn field(v: &Value, name: &str, what: &str) -> anyhow::Result<String> {
    v[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{what} answered {v}"))
}

/// `request_otp` + `verify` for `mobile` against the HTTP API at `base`.
pub async fn login(http: &reqwest::Client, base: &str, mobile: &str) -> anyhow::Result<Session> {
    let answer = async |path: &str, body: Value| -> anyhow::Result<Value> {
        let resp = http
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(anyhow!("{path} answered {status}: {text}"));
        }
        Ok(serde_json::from_str(&text)?)
    };
    let otp = answer("/users/auth/request_otp", json!({ "mobile": mobile })).await?;
    let otp = field(&otp, "otp", "request_otp")?;
    let session = answer(
        "/users/auth/verify",
        json!({ "mobile": mobile, "otp": otp }),
    )
    .await?;
    Ok(Session {
        mobile: mobile.to_owned(),
        token: field(&session, "token", "verify")?,
        user_id: field(&session, "user_id", "verify")?,
        display_name: field(&session, "display_name", "verify")?,
    })
}
