//! API Gateway WebSocket events (payload of `$connect`, `$disconnect`, `$default` and the
//! custom routes): the connection id, the body, the integration response, and the span
//! each invocation runs in. The WebSocket twin of `http.rs`.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;

use crate::domain::ConnectionId;
use crate::error::Result;

/// An integration response; only `$connect`'s status matters (non-2xx refuses the handshake).
pub fn response(status: i64, body: Option<&str>) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.body = body.map(|b| Body::Text(b.to_owned()));
    r
}

pub fn ok() -> ApiGatewayProxyResponse {
    response(200, None)
}

/// The connection the event is about.
pub fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Result<ConnectionId> {
    Ok(ConnectionId::parse(
        event
            .request_context
            .connection_id
            .as_deref()
            .unwrap_or_default(),
    )?)
}

pub use crate::socketio::runtime::Frame;

/// The frame the event carries: text frames arrive as the body, binary ones (where a
/// transport passes them) base64-encoded.
pub fn frame_of(event: &ApiGatewayWebsocketProxyRequest) -> Frame {
    let raw = event.body.clone().unwrap_or_default();
    if event.is_base64_encoded {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.as_bytes())
            .unwrap_or_default();
        Frame::Binary(bytes)
    } else {
        Frame::Text(raw)
    }
}

/// The frame's text (base64-decoded when API Gateway encoded it).
pub fn body_text(event: &ApiGatewayWebsocketProxyRequest) -> String {
    frame_of(event).into_text()
}

/// One span per invocation, with the route and the connection.
pub fn span(event: &ApiGatewayWebsocketProxyRequest) -> tracing::Span {
    tracing::info_span!(
        "ws",
        route = event.request_context.route_key.as_deref().unwrap_or(""),
        connection = event.request_context.connection_id.as_deref().unwrap_or(""),
    )
}
