//! The browser demo at `GET /` (B12): its files, their content types and its security headers.
//! The page itself is exercised in headless Chromium by `e2e/demo.test.mjs` (scripts/e2e.sh).

use reqwest::StatusCode;

use crate::helpers::{assert_error, header, spawn_app};

#[tokio::test]
async fn the_demo_files_are_served_with_their_types_and_a_strict_policy() {
    let app = spawn_app().await;
    let cases = [
        ("/", "text/html; charset=utf-8", "<title>Tessera demo</title>"),
        ("/demo/app.js", "text/javascript; charset=utf-8", "X-CSRF-Token"),
        ("/demo/app.css", "text/css; charset=utf-8", "#chat-log"),
        ("/demo/favicon.svg", "image/svg+xml", "<svg"),
    ];
    for (path, content_type, snippet) in cases {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "content-type"), Some(content_type), "{path}");
        let csp = header(&headers, "content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        // The router-wide security headers stay.
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(header(&headers, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(header(&headers, "cache-control"), Some("no-store"), "{path}");
        assert!(header(&headers, "x-request-id").is_some(), "{path}");
        assert!(response.text().await.unwrap().contains(snippet), "{path}");
    }
}

#[tokio::test]
async fn the_demo_links_to_the_hosted_pages() {
    let app = spawn_app().await;
    let html = app.get("/").send().await.unwrap().text().await.unwrap();
    for page in ["/signin", "/signup", "/account/settings"] {
        assert!(html.contains(&format!(r#"<a href="{page}">"#)), "{page}");
        let response = app.get(page).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
    }
}

#[tokio::test]
async fn the_demo_answers_head_and_refuses_other_methods_in_the_unified_shape() {
    let app = spawn_app().await;
    let response = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(response.headers(), "content-type"),
        Some("text/html; charset=utf-8")
    );
    let response = app.post("/").send().await.unwrap();
    let (headers, _) = assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert!(header(&headers, "allow").is_some_and(|allow| allow.contains("GET")));
    let response = app.get("/demo/missing.js").send().await.unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
}
