//! `--static-dir`: serves a directory at `/` for the demo site, behind the API routes.
//!
//! tower-http's `ServeDir` guesses content types from extensions; `.wasm` maps to
//! `application/wasm`, which `WebAssembly.instantiateStreaming` requires. `index.html` is served
//! for directories. Path traversal (`..`) is rejected by `ServeDir` itself.

use std::path::Path;

use tower_http::services::ServeDir;

/// The service answering every path no API route matched.
pub fn service(dir: &Path) -> ServeDir {
    ServeDir::new(dir).append_index_html_on_directories(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(dir: &Path, uri: &str) -> (StatusCode, String) {
        let r = service(dir)
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status(), ct)
    }

    #[tokio::test]
    async fn serves_wasm_and_index() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"\0asm").unwrap();
        assert_eq!(
            get(dir.path(), "/a.wasm").await,
            (StatusCode::OK, "application/wasm".into())
        );
        let (status, ct) = get(dir.path(), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("text/html"), "{ct}");
        assert_eq!(
            get(dir.path(), "/../etc/passwd").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
