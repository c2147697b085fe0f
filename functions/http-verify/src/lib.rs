//! `POST /users/auth/verify`: parse the request, call the core, map the result.

use shared::api::VerifyBody;
use shared::domain::{Mobile, Otp};
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let body: VerifyBody = req.json()?;
        let mobile = Mobile::parse(&body.mobile)?;
        let otp = Otp::parse(&body.otp)?;
        Reply::ok(&auth::verify(app, &req.source_ip(), mobile, otp).await?)
    })
    .await)
}
