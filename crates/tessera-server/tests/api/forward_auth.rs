//! Forward auth (G2) over HTTP, as a proxy calls it: `/auth/forward` (Traefik, Caddy),
//! `/auth/nginx` and `/auth/envoy/*`. Allowed with a cookie, a Bearer JWT and an API key and
//! the identity headers they give; 401 for API clients; the browser redirect and its return URL
//! against an attack list; rules (403); CSRF judged on the original method; forwarded headers
//! from an untrusted peer; malformed forwarded headers; the assertion checked by PyJWT.

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tessera_core::gateway::{AbsoluteUrl, Domains, Rules};
use tessera_server::config::Config;

use crate::helpers::{TestApp, TestUser, assert_error, header, spawn_app_with};

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const SIGNIN: &str = "https://auth.example.com/signin";

/// The gateway configuration of these tests: the loopback client is the trusted proxy.
fn gateway_config(config: &mut Config) {
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    config.gateway_domains = Domains::parse("example.com, http://dev.test").unwrap();
    config.gateway_rules = Rules::parse("api.example.com/admin/=role:admin, */agent/=scope:agent:chat").unwrap();
    config.gateway_signin_url = Some(AbsoluteUrl::parse(SIGNIN).unwrap());
}

async fn gateway_app() -> TestApp {
    spawn_app_with(gateway_config).await
}

/// `/auth/forward` for `method https://host uri`.
fn forward(app: &TestApp, method: &str, host: &str, uri: &str) -> RequestBuilder {
    app.get("/auth/forward")
        .header("x-forwarded-method", method)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", uri)
}

/// `/auth/nginx` for `method url`.
fn nginx(app: &TestApp, method: &str, url: &str) -> RequestBuilder {
    app.get("/auth/nginx")
        .header("x-original-method", method)
        .header("x-original-url", url)
}

async fn create_key(app: &TestApp, access: &str, scopes: &[&str]) -> String {
    let response = app
        .post("/api-keys")
        .bearer_auth(access)
        .json(&json!({ "name": "gateway", "scopes": scopes }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_owned()
}

fn assert_identity(response: &Response, user: &TestUser, session: bool) {
    let headers = response.headers();
    assert_eq!(response.status(), StatusCode::OK, "{headers:?}");
    assert_eq!(header(headers, "remote-user"), Some(user.username.as_str()));
    assert_eq!(header(headers, "remote-name"), Some(user.username.as_str()));
    assert_eq!(header(headers, "remote-email"), Some(user.email.as_str()));
    assert_eq!(header(headers, "remote-groups"), Some(""));
    assert_eq!(header(headers, "x-tessera-user-id"), Some(user.id.to_string().as_str()));
    assert_eq!(header(headers, "x-tessera-username"), Some(user.username.as_str()));
    // Every identity header is present; the session id is empty for an API key.
    assert_eq!(
        header(headers, "x-tessera-session-id").is_some_and(|s| !s.is_empty()),
        session
    );
    assert_eq!(header(headers, "x-tessera-roles"), Some(""));
    assert!(header(headers, "x-tessera-scopes").is_some_and(|s| !s.is_empty()));
    assert_eq!(
        header(headers, "x-tessera-assertion").map(|a| a.split('.').count()),
        Some(3)
    );
    assert!(header(headers, "x-ratelimit-limit").is_some());
    assert!(header(headers, "x-ratelimit-remaining").is_some());
}

/// The value of one metric series in the app's /metrics text.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[tokio::test]
async fn a_cookie_a_bearer_token_and_an_api_key_are_allowed_with_the_identity_headers() {
    // Arrange
    let app = gateway_app().await;
    let (user, login) = app.new_session().await;
    let key = create_key(&app, &login.access, &["agent:chat"]).await;

    // Act + Assert: Bearer at each endpoint.
    let response = forward(&app, "GET", "app.example.com", "/x?y=1")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_identity(&response, &user, true);
    let response = nginx(&app, "GET", "https://app.example.com/x")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_identity(&response, &user, true);
    let response = app
        .get("/auth/envoy/agent/chat?stream=1")
        .header("x-forwarded-host", "app.example.com")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_identity(&response, &user, true);

    // Envoy without a path suffix: the original path is `/`.
    for path in ["/auth/envoy", "/auth/envoy/"] {
        let response = app
            .get(path)
            .header("x-forwarded-host", "app.example.com")
            .bearer_auth(&login.access)
            .send()
            .await
            .unwrap();
        assert_identity(&response, &user, true);
    }

    // The cookie, with a safe original method.
    let response = forward(&app, "GET", "app.example.com", "/")
        .header("cookie", login.access_cookie())
        .send()
        .await
        .unwrap();
    assert_identity(&response, &user, true);
    assert_eq!(
        header(response.headers(), "x-tessera-session-id").map(str::to_owned),
        Some(app.session_id(&login.access).await)
    );

    // The API key: no session, its own scopes (and the `*/agent/` rule's scope).
    let response = forward(&app, "POST", "app.example.com", "/agent/chat")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_identity(&response, &user, false);
    assert_eq!(header(response.headers(), "x-tessera-scopes"), Some("agent:chat"));

    assert_eq!(
        metric(
            &app,
            r#"tessera_forward_auth_total{endpoint="forward",outcome="allowed"}"#
        )
        .await,
        3.0
    );
}

#[tokio::test]
async fn api_clients_without_a_valid_credential_get_401_with_www_authenticate() {
    let app = gateway_app().await;
    for request in [
        forward(&app, "GET", "app.example.com", "/x"),
        nginx(&app, "GET", "https://app.example.com/x"),
        app.get("/auth/envoy/x").header("x-forwarded-host", "app.example.com"),
        // A browser-looking Accept but a script: no redirect.
        forward(&app, "GET", "app.example.com", "/x")
            .header("accept", HTML)
            .header("x-requested-with", "XMLHttpRequest"),
        forward(&app, "GET", "app.example.com", "/x")
            .header("accept", HTML)
            .header("sec-fetch-mode", "cors"),
    ] {
        let (headers, _) = assert_error(
            request.send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
        )
        .await;
        assert!(headers.get("location").is_none());
    }
    let response = forward(&app, "GET", "app.example.com", "/x")
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(
        metric(
            &app,
            r#"tessera_forward_auth_total{endpoint="forward",outcome="unauthenticated"}"#
        )
        .await,
        4.0
    );
}

/// `Location` of a redirect (or of nginx's 401).
fn location(response: &Response) -> String {
    header(response.headers(), "location").unwrap_or_default().to_owned()
}

#[tokio::test]
async fn browsers_are_redirected_to_sign_in_with_a_return_url_on_configured_domains_only() {
    let app = gateway_app().await;
    let with_rd = format!("{SIGNIN}?rd=https%3A%2F%2Fapp.example.com%2Fx%3Fy%3D1");

    // GET: 302; POST: 303 (the browser follows with GET); nginx: 401 + Location.
    let response = forward(&app, "GET", "app.example.com", "/x?y=1")
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(location(&response), with_rd);
    let response = forward(&app, "POST", "app.example.com", "/x?y=1")
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), with_rd);
    let response = nginx(&app, "GET", "https://app.example.com/x?y=1")
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), with_rd);
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let response = app
        .get("/auth/envoy/x?y=1")
        .header("x-forwarded-host", "app.example.com")
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(location(&response), with_rd);
    // An http domain listed as such keeps its rd; an expired token redirects like none.
    let response = app
        .get("/auth/forward")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "api.dev.test:8080")
        .header("x-forwarded-uri", "/")
        .header("accept", HTML)
        .bearer_auth("expired.or.junk")
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&response),
        format!("{SIGNIN}?rd=http%3A%2F%2Fapi.dev.test%3A8080%2F")
    );

    // Hosts outside GATEWAY_DOMAINS (or https-only domains over http): the redirect goes
    // without rd.
    for (proto, host) in [
        ("https", "evil.com"),
        ("https", "example.com.evil.com"),
        ("https", "evilexample.com"),
        ("http", "app.example.com"),
    ] {
        let response = app
            .get("/auth/forward")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", proto)
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", "/x")
            .header("accept", HTML)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{proto}://{host}");
        assert_eq!(location(&response), SIGNIN, "{proto}://{host}");
    }
    // Original URLs built to fool a return-URL check: refused outright (400) or redirected
    // without rd; never a Location naming another host.
    for attack in [
        "https://example.com@evil.com/",
        "https://evil.com\\@example.com/",
        "https://evil.com#@example.com",
        "https://evil.com?.example.com",
        "https://evil.com/.example.com",
        "//evil.com/",
        "/\\evil.com",
        "https:/\\evil.com",
        "javascript:alert(1)//example.com",
        "https://evil%2ecom/",
        "https://example.com%2f@evil.com/",
        "https://evil.com:443\\.example.com",
    ] {
        let response = nginx(&app, "GET", attack).header("accept", HTML).send().await.unwrap();
        let status = response.status();
        let target = location(&response);
        assert!(
            status == StatusCode::BAD_REQUEST || (status == StatusCode::UNAUTHORIZED && target == SIGNIN),
            "{attack}: {status} {target}"
        );
    }

    // Without GATEWAY_SIGNIN_URL: the hosted `/signin` on the original request's origin.
    let app = spawn_app_with(|config| {
        gateway_config(config);
        config.gateway_signin_url = None;
    })
    .await;
    let response = forward(&app, "GET", "app.example.com:8443", "/x")
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&response),
        "https://app.example.com:8443/signin?rd=https%3A%2F%2Fapp.example.com%3A8443%2Fx"
    );
    assert_eq!(
        metric(
            &app,
            r#"tessera_forward_auth_total{endpoint="forward",outcome="redirected"}"#
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_failed_role_or_scope_rule_is_403_and_path_tricks_do_not_slip_past_it() {
    // Arrange
    let app = gateway_app().await;
    let (user, login) = app.new_session().await;
    let read_only_key = create_key(&app, &login.access, &["profile:read"]).await;

    // Act + Assert: `api.example.com/admin/=role:admin`.
    for uri in [
        "/admin/users",
        "/admin",
        "/%61dmin/",
        "/x/../admin/",
        "//admin/x",
        "/admin;x=1/y",
    ] {
        let response = forward(&app, "GET", "api.example.com", uri)
            .bearer_auth(&login.access)
            .send()
            .await
            .unwrap();
        let (headers, body) = assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
        assert_eq!(body["details"]["role"], "admin", "{uri}");
        assert!(headers.get("x-ratelimit-remaining").is_some());
    }
    // Other hosts are not under that rule.
    let response = forward(&app, "GET", "app.example.com", "/admin/users")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // `*/agent/=scope:agent:chat`: a profile:read key is refused with the scope named.
    let response = forward(&app, "POST", "app.example.com", "/agent/chat")
        .bearer_auth(&read_only_key)
        .send()
        .await
        .unwrap();
    let (headers, body) = assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert_eq!(body["details"]["scope"], "agent:chat");
    assert!(header(&headers, "www-authenticate").is_some_and(|w| w.contains(r#"scope="agent:chat""#)));

    // With the admin role (in the next token), the admin path opens.
    app.state.users.add_role(user.id, "admin", 0).await.unwrap();
    let admin = app.login_user(&user).await;
    let response = forward(&app, "GET", "api.example.com", "/admin/users")
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "remote-groups"), Some("admin"));
    assert_eq!(
        metric(
            &app,
            r#"tessera_forward_auth_total{endpoint="forward",outcome="forbidden"}"#
        )
        .await,
        7.0
    );
}

#[tokio::test]
async fn a_cookie_with_an_unsafe_original_method_needs_the_csrf_token() {
    let app = gateway_app().await;
    let (user, login) = app.new_session().await;
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let response = forward(&app, method, "app.example.com", "/x")
            .header("cookie", login.access_cookie())
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
        let response = forward(&app, method, "app.example.com", "/x")
            .header("cookie", login.access_cookie())
            .header("x-csrf-token", "wrong")
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
        let response = forward(&app, method, "app.example.com", "/x")
            .header("cookie", login.access_cookie())
            .header("x-csrf-token", &login.csrf)
            .send()
            .await
            .unwrap();
        assert_identity(&response, &user, true);
    }
    // The method judged is the original one, not the auth request's own (GET here).
    let response = nginx(&app, "POST", "https://app.example.com/x")
        .header("cookie", login.access_cookie())
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    // Envoy: the method is the request's own.
    let response = app
        .post("/auth/envoy/x")
        .header("x-forwarded-host", "app.example.com")
        .header("cookie", login.access_cookie())
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    // A Bearer token needs no CSRF token.
    let response = forward(&app, "POST", "app.example.com", "/x")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_identity(&response, &user, true);
}

#[tokio::test]
async fn forwarded_headers_from_a_peer_outside_trusted_proxies_are_refused() {
    // Arrange: the same gateway, but the loopback client is not a trusted proxy.
    let app = spawn_app_with(|config| {
        gateway_config(config);
        config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let (_, login) = app.new_session().await;
    // Act + Assert: even a valid credential gets no identity headers from a spoofing client.
    for request in [
        forward(&app, "GET", "app.example.com", "/x"),
        nginx(&app, "GET", "https://app.example.com/x"),
        app.get("/auth/envoy/x").header("x-forwarded-host", "app.example.com"),
    ] {
        let response = request
            .bearer_auth(&login.access)
            .header("x-forwarded-for", "10.1.2.3")
            .send()
            .await
            .unwrap();
        let (headers, body) = assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
        assert!(headers.get("remote-user").is_none());
        assert!(body["message"].as_str().unwrap().contains("TRUSTED_PROXIES"));
    }
    assert_eq!(
        metric(
            &app,
            r#"tessera_forward_auth_total{endpoint="nginx",outcome="untrusted_proxy"}"#
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn missing_or_malformed_forwarded_headers_are_a_clear_400() {
    let app = gateway_app().await;
    let (_, login) = app.new_session().await;
    let huge = format!("https://app.example.com/{}", "a".repeat(9000));
    let requests = [
        app.get("/auth/forward"),
        app.get("/auth/forward").header("x-forwarded-proto", "https"),
        forward(&app, "GET", "app.example.com", "no-slash"),
        forward(&app, "GET", "app.example.com@evil.com", "/"),
        forward(&app, "GET", "app.example.com", "/%zz"),
        forward(&app, "GET", "app.example.com", "/%00"),
        forward(&app, "G(T", "app.example.com", "/"),
        app.get("/auth/forward")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "gopher")
            .header("x-forwarded-host", "app.example.com"),
        // No original method: CSRF could not be judged.
        app.get("/auth/forward")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "app.example.com"),
        app.get("/auth/nginx")
            .header("x-original-url", "https://app.example.com/"),
        app.get("/auth/nginx"),
        nginx(&app, "GET", "not a url"),
        nginx(&app, "GET", &huge),
        app.get("/auth/nginx").header(
            HeaderName::from_static("x-original-url"),
            HeaderValue::from_bytes(b"https://app.example.com/\xff").unwrap(),
        ),
    ];
    for request in requests {
        let response = request.bearer_auth(&login.access).send().await.unwrap();
        let (_, body) = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert_eq!(
            body["message"],
            "The forwarded request headers are missing or malformed"
        );
    }
    // Chinese clients get the message in Chinese.
    let response = app
        .get("/auth/nginx")
        .header("accept-language", "zh-CN")
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(body["message"], "转发的原始请求头缺失或格式错误");
}

#[tokio::test]
async fn forward_auth_counts_against_the_api_rate_limit() {
    let app = spawn_app_with(|config| {
        gateway_config(config);
        config.rate_limit_api = "2/minute".parse().unwrap();
    })
    .await;
    let (_, login) = app.new_session().await;
    for remaining in ["1", "0"] {
        let response = forward(&app, "GET", "app.example.com", "/")
            .bearer_auth(&login.access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(response.headers(), "x-ratelimit-remaining"), Some(remaining));
    }
    let response = forward(&app, "GET", "app.example.com", "/")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    let (headers, _) = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(headers.get("retry-after").is_some());
    assert!(headers.get("remote-user").is_none());
}

#[tokio::test]
async fn cookie_domain_puts_the_session_cookies_on_the_shared_domain() {
    let app = spawn_app_with(|config| config.cookie_domain = Some("example.com".to_owned())).await;
    let user = app.register_user().await;
    let response = app.login(&user.email, &user.password).await;
    let cookies = crate::helpers::set_cookies(response.headers());
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert!(cookie.contains("; Domain=example.com;"), "{cookie}");
    }
}

#[tokio::test]
async fn the_assertion_is_verified_by_pyjwt_through_the_jwk_set() {
    let Some(python) = crate::keys::python() else { return };
    let app = gateway_app().await;
    let (user, login) = app.new_session().await;
    let response = forward(&app, "GET", "app.example.com:8443", "/x")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    let assertion = header(response.headers(), "x-tessera-assertion").unwrap().to_owned();
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // `aud` is the original host (no port).
    let (code, stdout, stderr) = crate::keys::python_verify_as(
        &python,
        dir.path(),
        &assertion,
        &jwks,
        app.config.identity_algorithm.as_str(),
        "app.example.com",
        &app.config.issuer,
    )
    .await;
    assert_eq!(code, 0, "PyJWT refused the assertion: {stderr}");
    let claims: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["preferred_username"], user.username.as_str());
    assert_eq!(claims["email"], user.email.as_str());
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 60);
    // For any other audience it is refused.
    let (code, _, _) = crate::keys::python_verify_as(
        &python,
        dir.path(),
        &assertion,
        &jwks,
        app.config.identity_algorithm.as_str(),
        "other.example.com",
        &app.config.issuer,
    )
    .await;
    assert_ne!(code, 0);

    // GATEWAY_ASSERTION_AUDIENCE names the audience instead.
    let app = spawn_app_with(|config| {
        gateway_config(config);
        config.gateway_assertion_audience = Some("internal-apps".to_owned());
    })
    .await;
    let (_, login) = app.new_session().await;
    let response = forward(&app, "GET", "app.example.com", "/x")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    let assertion = header(response.headers(), "x-tessera-assertion").unwrap().to_owned();
    let payload: Value =
        serde_json::from_slice(&tessera_core::b64::decode(assertion.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(payload["aud"], "internal-apps");
}
