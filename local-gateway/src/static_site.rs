//! The web client's files, served locally only: `GET /` is `index.html` and `GET /<file>`
//! any file under the web root (`web/public`). In AWS the same files sit in S3 behind
//! CloudFront. A layer in front of the router: the API's routes come first (a request an
//! HTTP route matches, or a WebSocket upgrade, passes through untouched), then files.

use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Shared;

/// The layer: a plain GET or HEAD that no HTTP route matches and that names a file of the
/// web root gets the file; everything else goes on to the router.
pub(crate) async fn layer(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(root) = &shared.web_root
        && !request.headers().contains_key(header::UPGRADE)
    {
        let method = request.method().as_str();
        let path = request.uri().path();
        let api = shared
            .http_routes
            .iter()
            .any(|r| r.matches(method, path).is_some());
        if !api && let Some(file) = serve(root, method, path).await {
            return file;
        }
    }
    next.run(request).await
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// The file `path` names under `root`, if it is a plain relative path (no `..`, no hidden
/// segments, only URL-safe characters) to an existing file.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let safe = rel.split('/').all(|seg| {
        !seg.is_empty()
            && !seg.starts_with('.')
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    });
    if !safe {
        return None;
    }
    let file = root.join(rel);
    file.is_file().then_some(file)
}

/// Serves `path` from `root` for GET and HEAD; `None` when there is no such file.
async fn serve(root: &Path, method: &str, path: &str) -> Option<Response> {
    let head = method.eq_ignore_ascii_case(Method::HEAD.as_str());
    if !head && !method.eq_ignore_ascii_case(Method::GET.as_str()) {
        return None;
    }
    let file = resolve(root, path)?;
    let bytes = tokio::fs::read(&file).await.ok()?;
    let len = bytes.len();
    let mut resp = if head {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::OK, bytes).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    // Local development: always revalidate, so an edited file shows on reload.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if head {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_resolve() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        assert!(resolve(&root, "/lib.rs").is_some());
        for bad in [
            "/../Cargo.toml",
            "/.hidden",
            "/a//b",
            "/lib.rs%00",
            "/nope.rs",
        ] {
            assert!(resolve(&root, bad).is_none(), "{bad}");
        }
    }
}
