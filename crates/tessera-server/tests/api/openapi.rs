//! The OpenAPI document at /openapi.json and the offline API page at /docs (B12).

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use tessera_server::http::openapi::{DOCS_PATH, OPENAPI_PATH, SHIPPED_FILES};

use crate::helpers::{TestApp, assert_error, header, spawn_app};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let response = app.get(OPENAPI_PATH).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        header(response.headers(), "content-type").is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        response.headers()
    );
    response.json().await.unwrap()
}

/// (method, path) of every operation in the document.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                operations.insert((method.clone(), path.clone()));
            }
        }
    }
    operations
}

/// (method, path) of every `.route("path", method(..)...)` in `src/http/*.rs`: the router's
/// own list, read from its source, so that a new route is found without anyone updating a
/// list by hand.
fn source_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut routes = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            files += 1;
            routes.extend(routes_in(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(files >= 8, "src/http has the route modules");
    routes
}

fn routes_in(source: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let args = rest.trim_start();
        let Some(args) = args.strip_prefix('"') else {
            continue;
        };
        let end = args.find('"').unwrap();
        let path = &args[..end];
        let after = args[end + 1..].trim_start().strip_prefix(',').unwrap().trim_start();
        // The method router: `get(h)`, `post(h).route_layer(..)`, `get(a).post(b)`. Methods
        // are the calls at the top level of the argument, before `.route(`'s closing paren.
        let mut depth = 0usize;
        let bytes = after.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                _ if depth == 0 => {
                    let preceded = i == 0 || matches!(bytes[i - 1], b'.' | b' ' | b'\n');
                    for method in METHODS {
                        if preceded && after[i..].starts_with(&format!("{method}(")) {
                            routes.push((method.to_owned(), path.to_owned()));
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    routes
}

#[test]
fn the_source_scan_reads_routes_and_methods() {
    let source = r#"
        Router::new()
            .route("/a", post(a))
            .route(
                "/b/{id}",
                get(b).route_layer(axum::middleware::from_fn(x)),
            )
            .route("/c", get(c).delete(d))
    "#;
    let expected: Vec<(String, String)> = [("post", "/a"), ("get", "/b/{id}"), ("get", "/c"), ("delete", "/c")]
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(routes_in(source), expected);
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_exactly_the_served_routes() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "Tessera");

    // Both ways: every route in the router's source is documented, and nothing else is.
    let mut expected = source_routes();
    assert!(expected.len() >= 14, "{expected:?}");
    // The document and the page come from utoipa-swagger-ui's router, not a `.route` call.
    for path in [
        OPENAPI_PATH.to_owned(),
        DOCS_PATH.to_owned(),
        format!("{DOCS_PATH}/"),
        format!("{DOCS_PATH}/{{file}}"),
    ] {
        expected.insert(("get".to_owned(), path));
    }
    let documented = documented_operations(&doc);
    let undocumented: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        undocumented.is_empty(),
        "routes without documentation: {undocumented:?}"
    );
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");

    // And the running router serves every documented operation: no 404 from the fallback,
    // no 405. (Without credentials the protected ones answer 401 before looking further.)
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "some-session").replace("{file}", "index.css");
        let url = app.url(&concrete);
        let request = match method.as_str() {
            "get" => app.client.get(url),
            "post" => app.client.post(url),
            "delete" => app.client.delete(url),
            other => panic!("unexpected method {other}"),
        };
        let status = request.send().await.unwrap().status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}: {status}"
        );
    }
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
            resolve(doc, target)
        }
        None => value,
    }
}

/// Every `$ref` anywhere in `value`.
fn all_refs<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => refs.push(reference),
                    _ => all_refs(inner, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|inner| all_refs(inner, refs)),
        _ => {}
    }
}

#[tokio::test]
async fn every_documented_status_has_a_schema_and_errors_have_the_unified_shape() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    let mut refs = Vec::new();
    all_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let pointer = reference.strip_prefix('#').expect("a local $ref");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {reference}");
    }

    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    let mut required: Vec<&str> = error_body["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["details", "error", "message"]);
    let codes = &resolve(&doc, &error_body["properties"]["error"])["enum"];
    for code in [
        "invalid_token",
        "token_expired",
        "csrf_failed",
        "rate_limited",
        "validation_error",
    ] {
        assert!(codes.as_array().unwrap().iter().any(|c| c == code), "{code} in {codes}");
    }

    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')));
            for (status, response) in responses {
                let code: u16 = status
                    .parse()
                    .unwrap_or_else(|_| panic!("{method} {path}: status {status}"));
                let response = resolve(&doc, response);
                assert!(response["description"].is_string(), "{method} {path} {status}");
                if matches!(code, 204 | 303 | 304) {
                    assert!(
                        response.get("content").is_none(),
                        "{method} {path} {status} has no body"
                    );
                    continue;
                }
                let content = response["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{method} {path} {status} has no content"));
                assert!(!content.is_empty());
                for (media_type, media) in content {
                    assert!(
                        media.get("schema").is_some(),
                        "{method} {path} {status} {media_type}: no schema"
                    );
                }
                if code >= 400 {
                    assert_eq!(
                        content["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
                if code == 401 {
                    assert!(response["headers"].get("WWW-Authenticate").is_some());
                }
                if code == 429 {
                    for name in [
                        "Retry-After",
                        "X-RateLimit-Limit",
                        "X-RateLimit-Remaining",
                        "X-RateLimit-Reset",
                    ] {
                        assert!(response["headers"].get(name).is_some(), "{method} {path} 429 {name}");
                    }
                }
                checked += 1;
            }
            // The middleware's answers are documented on every operation.
            for status in ["400", "408", "413", "500"] {
                assert!(responses.contains_key(status), "{method} {path} lacks {status}");
            }
        }
    }
    assert!(checked > 100, "{checked}");

    // Security: the protected routes accept Bearer or cookie (+ CSRF on unsafe methods).
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cookie"]["in"], "cookie");
    assert_eq!(schemes["cookie"]["name"], "access_token");
    assert_eq!(schemes["csrf"]["in"], "header");
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
    let chat = &doc["paths"]["/agent/chat"]["post"];
    assert_eq!(
        chat["security"],
        serde_json::json!([{ "bearer": [] }, { "cookie": [], "csrf": [] }])
    );
    assert!(doc["paths"]["/login"]["post"].get("security").is_none());
    // Login takes JSON or a form; /refresh may come with no body (the cookie).
    let login_body = doc["paths"]["/login"]["post"]["requestBody"]["content"]
        .as_object()
        .unwrap();
    assert!(login_body.contains_key("application/json"));
    assert!(login_body.contains_key("application/x-www-form-urlencoded"));
    assert_eq!(doc["paths"]["/refresh"]["post"]["requestBody"]["required"], false);
    assert_eq!(
        doc["paths"]["/email/verify/resend"]["post"]["requestBody"]["required"],
        false
    );
}

/// The `src` and `href` attribute values of an HTML page.
fn asset_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let end = rest.find('"').unwrap();
            urls.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    urls
}

#[tokio::test]
async fn the_docs_page_works_offline_from_its_own_assets() {
    let app = spawn_app().await;
    let response = app.get(DOCS_PATH).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(response.headers(), "location"), Some("/docs/"));

    let response = app.get("/docs/").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(header(&headers, "content-type").unwrap().starts_with("text/html"));
    // The same security headers as every route, and a CSP allowing only this origin.
    assert_eq!(header(&headers, "x-frame-options"), Some("DENY"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "{html}");
    assert!(!html.contains("//cdn") && !html.contains("src=\"//"), "{html}");

    let urls = asset_urls(&html);
    assert!(urls.iter().any(|u| u.ends_with(".js")), "{urls:?}");
    assert!(urls.iter().any(|u| u.ends_with(".css")), "{urls:?}");
    for url in &urls {
        assert!(!url.contains("://") && !url.starts_with("//"), "not local: {url}");
        let path = format!("/docs/{}", url.trim_start_matches("./"));
        let response = app.get(&path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let content_type = header(response.headers(), "content-type").unwrap().to_owned();
        let expected = match path.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "png" => "image/png",
            other => panic!("unexpected asset {path} ({other})"),
        };
        assert!(content_type.starts_with(expected), "{path}: {content_type}");
        let body = response.bytes().await.unwrap();
        assert!(body.len() > 100, "{path}: {} bytes", body.len());
        if path.ends_with("swagger-initializer.js") {
            let script = String::from_utf8(body.to_vec()).unwrap();
            // The UI loads this server's document, and never an online validator.
            assert!(script.contains("\"url\": \"/openapi.json\""), "{script}");
            assert!(script.contains("\"validatorUrl\": \"none\""), "{script}");
            assert!(!script.contains("http://") && !script.contains("https://"), "{script}");
        }
    }
}

#[tokio::test]
async fn the_docs_serve_the_shipped_files_only() {
    let app = spawn_app().await;
    for file in SHIPPED_FILES {
        let response = app.get(&format!("/docs/{file}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert!(response.bytes().await.unwrap().len() > 100, "{file} is not empty");
    }
    // The rest of Swagger UI's distribution (source maps, other bundles) is not served.
    for file in [
        "swagger-ui-bundle.js.map",
        "swagger-ui-es-bundle.js",
        "swagger-ui.js",
        "swagger-ui.css.map",
    ] {
        let response = app.get(&format!("/docs/{file}")).send().await.unwrap();
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn the_unified_404_and_405_still_hold_around_the_docs() {
    let app = spawn_app().await;
    for path in ["/docs/no-such-file.js", "/nope", "/openapi.yaml"] {
        let response = app.get(path).send().await.unwrap();
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let response = app.post(OPENAPI_PATH).send().await.unwrap();
    assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}
