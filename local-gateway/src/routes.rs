//! Which function serves which route: the one table the local gateway dispatches from, and
//! that the template test compares with `template.yaml` so the two cannot drift apart.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use futures::future::BoxFuture;
use serde_json::Value;
use shared::App;

/// A REST function as the Lambda runtime sees it: the event JSON in, the response JSON out
/// (through `lambda_http`, as in AWS).
pub type HttpHandler = fn(
    &'static App,
    Value,
    lambda_runtime::Context,
) -> BoxFuture<'static, Result<Value, lambda_runtime::Error>>;

/// An HTTP API route: `route_key` is API Gateway's (`"POST /users/auth/request_otp"`).
#[derive(Clone, Copy, Debug)]
pub struct HttpRoute {
    pub route_key: &'static str,
    /// The function crate (and SAM resource's `CodeUri` folder) that serves it.
    pub function: &'static str,
    pub handler: HttpHandler,
}

impl HttpRoute {
    pub fn method(&self) -> &'static str {
        self.route_key.split_once(' ').map_or("", |(m, _)| m)
    }

    pub fn path(&self) -> &'static str {
        self.route_key.split_once(' ').map_or("", |(_, p)| p)
    }

    /// Matches a concrete path against the route's template; returns the path parameters.
    pub fn matches(&self, method: &str, path: &str) -> Option<Vec<(String, String)>> {
        if self.method() != "ANY" && !self.method().eq_ignore_ascii_case(method) {
            return None;
        }
        let template: Vec<&str> = self.path().trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        if template.len() != actual.len() {
            return None;
        }
        let mut params = Vec::new();
        for (t, a) in template.iter().zip(&actual) {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) if !a.is_empty() => params.push((name.to_owned(), (*a).to_owned())),
                Some(_) => return None,
                None if t == a => {}
                None => return None,
            }
        }
        Some(params)
    }
}

/// An [`HttpRoute`] whose function runs `handler` (a REST handler: a crate's `handler`, or a
/// closure that captures nothing) through `lambda_http`, as in AWS.
#[macro_export]
macro_rules! http_route {
    ($key:literal, $function:literal, $handler:expr) => {
        $crate::routes::HttpRoute {
            route_key: $key,
            function: $function,
            handler: |app, event, context| {
                Box::pin(shared::lambda::invoke_http(app, $handler, event, context))
            },
        }
    };
}

/// Every REST route, as the HTTP API in `template.yaml` declares it.
pub fn http_routes() -> Vec<HttpRoute> {
    vec![
        http_route!(
            "POST /users/auth/request_otp",
            "http-request-otp",
            http_request_otp::handler
        ),
        http_route!(
            "POST /users/auth/verify",
            "http-verify",
            http_verify::handler
        ),
        http_route!(
            "POST /users/auth/refresh",
            "http-refresh",
            http_refresh::handler
        ),
        http_route!(
            "POST /users/auth/logout",
            "http-logout",
            http_logout::handler
        ),
        http_route!(
            "POST /users/auth/logout_all",
            "http-logout-all",
            http_logout_all::handler
        ),
        http_route!("GET /users/me", "http-get-me", http_get_me::handler),
        // Engine.IO long-polling: the long-poll (and handshake), and the client's packets
        // (every other method, refused there with Engine.IO's 400).
        http_route!("GET /socket.io", "http-eio-poll", http_eio_poll::handler),
        http_route!("ANY /socket.io", "http-eio-post", http_eio_post::handler),
        http_route!("PATCH /users/me", "http-update-me", http_update_me::handler),
        http_route!(
            "GET /chat/messages/{other_id}",
            "http-get-messages",
            http_get_messages::handler
        ),
        http_route!(
            "GET /chat/conversations",
            "http-list-conversations",
            http_list_conversations::handler
        ),
        http_route!(
            "POST /chat/conversations",
            "http-start-conversation",
            http_start_conversation::handler
        ),
    ]
}

pub type WsHandler = fn(
    &'static App,
    ApiGatewayWebsocketProxyRequest,
) -> BoxFuture<'static, shared::Result<ApiGatewayProxyResponse>>;

/// A WebSocket API route: `$connect`, `$disconnect`, `$default` or an `action` value.
#[derive(Clone, Copy, Debug)]
pub struct WsRoute {
    pub route_key: &'static str,
    pub function: &'static str,
    pub handler: WsHandler,
}

macro_rules! ws_route {
    ($key:literal, $function:literal, $krate:ident) => {
        WsRoute {
            route_key: $key,
            function: $function,
            handler: |app, event| Box::pin($krate::handler(app, event)),
        }
    };
}

/// Every WebSocket route, as the WebSocket API in `template.yaml` declares it
/// (`RouteSelectionExpression: $request.body.action`).
pub fn ws_routes() -> Vec<WsRoute> {
    vec![
        ws_route!("$connect", "ws-connect", ws_connect),
        ws_route!("$disconnect", "ws-disconnect", ws_disconnect),
        ws_route!("$default", "ws-default", ws_default),
        ws_route!("send_message", "ws-send-message", ws_send_message),
        ws_route!("typing", "ws-typing", ws_typing),
        ws_route!("read", "ws-read", ws_read),
    ]
}

/// One WebSocket API: the paths it is reachable on locally, its routes, and whether binary
/// frames reach the functions (API Gateway refuses them; only the conformance server, which
/// runs nowhere but here, lets them through).
#[derive(Clone, Debug)]
pub struct WsApi {
    pub paths: Vec<String>,
    pub routes: Vec<WsRoute>,
    pub binary_frames: bool,
}

impl WsApi {
    /// The chat's WebSocket API: Socket.IO's default path, the root, and the stage path.
    pub fn chat(stage: &str) -> Self {
        Self {
            paths: vec![
                "/".into(),
                "/socket.io".into(),
                "/socket.io/".into(),
                format!("/{stage}"),
                format!("/{stage}/"),
            ],
            routes: ws_routes(),
            binary_frames: false,
        }
    }

    pub fn serves(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }
}

pub type InvokeHandler = fn(&'static App, Value) -> BoxFuture<'static, Result<Value, String>>;

/// A function other functions invoke through the Lambda API (and the schedule targets).
#[derive(Clone, Copy, Debug)]
pub struct Invocable {
    pub function: &'static str,
    pub handler: InvokeHandler,
}

/// The functions reachable through the Lambda `Invoke` API.
pub fn invocables() -> Vec<Invocable> {
    vec![Invocable {
        function: "scheduler",
        handler: |app, payload| {
            Box::pin(async move {
                match scheduler::handler(app, payload).await {
                    Ok(report) => Ok(serde_json::to_value(report).unwrap_or(Value::Null)),
                    Err(e) => Err(e.to_string()),
                }
            })
        },
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_extracts_parameters() {
        let routes = http_routes();
        let history = routes
            .iter()
            .find(|r| r.function == "http-get-messages")
            .expect("history route");
        assert_eq!(
            history.matches("GET", "/chat/messages/abc"),
            Some(vec![("other_id".to_owned(), "abc".to_owned())])
        );
        assert_eq!(history.matches("POST", "/chat/messages/abc"), None);
        assert_eq!(history.matches("GET", "/chat/messages/"), None);
        assert_eq!(history.matches("GET", "/chat/messages/a/b"), None);
    }
}
