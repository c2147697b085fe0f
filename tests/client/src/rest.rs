//! The REST login, as a client does it: `request_otp`, then `verify` with the code the local
//! emulation returns.

use anyhow::anyhow;
use serde_json::{Value, json};

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub mobile: String,
    pub token: String,
    pub refresh_token: String,
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

/// The code in the newest text message the local gateway's SNS emulation sent to `mobile`.
pub async fn sms_code(http: &reqwest::Client, base: &str, mobile: &str) -> anyhow::Result<String> {
    let outbox: Value = http
        .get(format!("{base}/local/sms/{mobile}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let text = outbox["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["text"].as_str())
        .ok_or_else(|| anyhow!("no text message to {mobile}"))?;
    otp_in(text).ok_or_else(|| anyhow!("no code in the text message `{text}`"))
}

/// The first run of six digits in a text message.
pub fn otp_in(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5)).find_map(|i| {
        let run = &bytes[i..i + 6];
        let bounded = (i == 0 || !bytes[i - 1].is_ascii_digit())
            && bytes.get(i + 6).is_none_or(|b| !b.is_ascii_digit());
        (run.iter().all(u8::is_ascii_digit) && bounded).then(|| text[i..i + 6].to_owned())
    })
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
    let issued = answer("/users/auth/request_otp", json!({ "mobile": mobile })).await?;
    let otp = match issued["otp"].as_str() {
        Some(otp) => otp.to_owned(),
        // `OTP_MODE=sms`: the code went by text message; the local gateway keeps an outbox.
        None => sms_code(http, base, mobile).await?,
    };
    let session = answer(
        "/users/auth/verify",
        json!({ "mobile": mobile, "otp": otp }),
    )
    .await?;
    Ok(Session {
        mobile: mobile.to_owned(),
        token: field(&session, "token", "verify")?,
        refresh_token: field(&session, "refresh_token", "verify")?,
        user_id: field(&session, "user_id", "verify")?,
        display_name: field(&session, "display_name", "verify")?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_in_text_messages() {
        assert_eq!(
            super::otp_in("Your chat login code is 012345. It expires in 5 minutes.").as_deref(),
            Some("012345")
        );
        assert_eq!(super::otp_in("code 1234567 is too long"), None);
        assert_eq!(super::otp_in("no code"), None);
    }
}
