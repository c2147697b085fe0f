//! HTTP API plumbing shared by every REST function, on top of `lambda_http` (which turns
//! the API Gateway payload v2 event into an `http::Request` and the `http::Response` back):
//! typed accessors for what a handler reads (JSON body with a size limit, the token header,
//! path and query parameters) and the single place that turns a core result into a
//! response.
//!
//! Every error body is `{"error":{"code":"...","message":"..."}}`.

use http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde::{Serialize, de::DeserializeOwned};
use tracing::Instrument;

use crate::domain::{SourceIp, Token};
use crate::error::{AuthError, Error, InputError, json_problem};

/// The request a REST function receives.
pub type Request = lambda_http::Request;
/// The response a REST function returns.
pub type Response = lambda_http::Response<Body>;

/// Largest request body a REST function accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What a handler hands back on success.
#[derive(Debug)]
pub enum Reply {
    Json(u16, serde_json::Value),
    NoContent,
}

impl Reply {
    pub fn ok<T: Serialize>(value: &T) -> Result<Reply, Error> {
        Self::json(200, value)
    }

    pub fn json<T: Serialize>(status: u16, value: &T) -> Result<Reply, Error> {
        let v = serde_json::to_value(value)
            .map_err(|e| InputError::InvalidBody(format!("response not serialisable: {e}")))?;
        Ok(Reply::Json(status, v))
    }
}

/// A borrowed view of the incoming request with typed accessors.
#[derive(Debug)]
pub struct Input<'a> {
    req: &'a Request,
}

impl<'a> Input<'a> {
    pub fn new(req: &'a Request) -> Self {
        Self { req }
    }

    /// Parses the JSON body: syntax errors are `malformed_json`, a wrong shape `invalid_body`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, InputError> {
        let bytes: &[u8] = self.req.body();
        if bytes.len() > MAX_BODY_BYTES {
            return Err(InputError::BodyTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(InputError::MalformedJson("request body is empty".into()));
        }
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => InputError::InvalidBody(json_problem(&e)),
            _ => InputError::MalformedJson(json_problem(&e)),
        })
    }

    /// The session token from `Authorization: <token>` or `Authorization: Bearer <token>`.
    pub fn token(&self) -> Result<Token, Error> {
        let value = self
            .req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Unauthorized)?;
        Ok(parse_authorization(value)?)
    }

    pub fn path_param(&self, name: &str) -> Option<&'a str> {
        self.req.path_parameters_ref()?.first(name)
    }

    /// The last segment of the raw path: how a function behind a Lambda function URL (which
    /// has no route templates, e.g. under `cargo lambda watch`) finds its path parameter.
    pub fn last_path_segment(&self) -> Option<&'a str> {
        self.req
            .raw_http_path()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
    }

    /// The caller's address, as API Gateway saw it (`requestContext.http.sourceIp`).
    pub fn source_ip(&self) -> SourceIp {
        SourceIp(match self.req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                ctx.http.source_ip.clone().unwrap_or_default()
            }
            _ => String::new(),
        })
    }

    pub fn query(&self, name: &str) -> Option<&'a str> {
        self.req.query_string_parameters_ref()?.first(name)
    }
}

/// Accepts the seed's bare `<token>` and `Bearer <token>`.
pub fn parse_authorization(value: &str) -> Result<Token, InputError> {
    let value = value.trim();
    let raw = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    Token::parse(raw)
}

/// The route key and request id API Gateway put in the request context.
fn route_and_id(req: &Request) -> (String, String) {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.route_key.clone().unwrap_or_default(),
            ctx.request_id.clone().unwrap_or_default(),
        ),
        _ => Default::default(),
    }
}

/// Runs one REST handler inside a span named after the route, and maps its result.
pub async fn handle<F>(req: Request, f: F) -> Response
where
    F: AsyncFnOnce(Input<'_>) -> Result<Reply, Error>,
{
    let (route, request_id) = route_and_id(&req);
    let span = tracing::info_span!("http", route = %route, request_id = %request_id);
    async {
        match f(Input::new(&req)).await {
            Ok(reply) => reply_response(reply),
            Err(e) => {
                log_error(&e);
                error_response(&e)
            }
        }
    }
    .instrument(span)
    .await
}

/// Logs an error with its whole cause chain; internal ones at error level.
pub fn log_error(e: &Error) {
    let mut chain = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(" <- ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let code = e.public().code;
    if e.is_internal() {
        tracing::error!(code, error = %e, cause = %chain, "request failed");
    } else {
        tracing::info!(code, error = %e, "request refused");
    }
}

fn json_response(status: u16, body: String) -> Response {
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn reply_response(reply: Reply) -> Response {
    match reply {
        Reply::Json(status, value) => json_response(status, value.to_string()),
        Reply::NoContent => {
            let mut resp = Response::new(Body::Empty);
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
    }
}

/// The JSON error body for any status and code (the local gateway uses it for its own 404s).
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

/// The one mapping from a core error to an HTTP response.
pub fn error_response(e: &Error) -> Response {
    let p = e.public();
    let mut resp = json_response(p.status, error_body(p.code, &p.message));
    if let Some(v) = p
        .retry_after
        .and_then(|wait| HeaderValue::from_str(&wait.as_secs().max(1).to_string()).ok())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if p.status == 401 {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn event(body: Option<&str>, auth: Option<&str>) -> Request {
        let mut headers = serde_json::Map::new();
        if let Some(a) = auth {
            headers.insert("authorization".into(), a.into());
        }
        let raw = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /x",
            "rawPath": "/x",
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "http": { "method": "POST", "path": "/x", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t" },
                "requestId": "r", "routeKey": "POST /x", "stage": "$default", "timeEpoch": 0
            },
            "body": body,
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&raw.to_string()).expect("valid event")
    }

    #[derive(Debug, Deserialize)]
    struct Body1 {
        #[allow(dead_code)]
        mobile: String,
    }

    #[test]
    fn json_errors_are_classified() {
        let e = event(Some("{nope"), None);
        assert!(matches!(
            Input::new(&e).json::<Body1>(),
            Err(InputError::MalformedJson(_))
        ));
        let e = event(Some(r#"{"mobile": 5}"#), None);
        assert!(matches!(
            Input::new(&e).json::<Body1>(),
            Err(InputError::InvalidBody(_))
        ));
        let e = event(None, None);
        assert!(matches!(
            Input::new(&e).json::<Body1>(),
            Err(InputError::MalformedJson(_))
        ));
        let big = format!(r#"{{"mobile":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let e = event(Some(&big), None);
        assert!(matches!(
            Input::new(&e).json::<Body1>(),
            Err(InputError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn authorization_forms() {
        let t = Token::generate();
        for form in [
            t.expose().to_owned(),
            format!("Bearer {}", t.expose()),
            format!("bearer  {}", t.expose()),
        ] {
            let e = event(None, Some(&form));
            assert_eq!(
                Input::new(&e).token().map(|t| t.legacy_hash()).ok(),
                Some(t.legacy_hash())
            );
        }
        let e = event(None, None);
        assert!(Input::new(&e).token().is_err());
        let e = event(None, Some("Basic abc"));
        assert!(Input::new(&e).token().is_err());
    }

    #[test]
    fn route_and_request_id_come_from_the_context() {
        let e = event(None, None);
        assert_eq!(route_and_id(&e), ("POST /x".to_owned(), "r".to_owned()));
    }

    #[test]
    fn error_response_shape() {
        let resp = error_response(&Error::from(AuthError::RateLimited {
            retry_after: std::time::Duration::from_secs(30),
        }));
        assert_eq!(resp.status(), 429);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("30")
        );
        let Body::Text(body) = resp.body() else {
            panic!("text body")
        };
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"]["code"], "rate_limited");
        assert!(v["error"]["message"].is_string());
    }
}
