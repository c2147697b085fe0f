//! `POST /users/auth/request_otp`: parse the request, call the core, map the result.

use shared::api::RequestOtpBody;
use shared::domain::Mobile;
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let body: RequestOtpBody = req.json()?;
        let mobile = Mobile::parse(&body.mobile)?;
        Reply::ok(&auth::request_otp(app, &req.source_ip(), mobile).await?)
    })
    .await)
}
