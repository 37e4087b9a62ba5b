//! Issue #13's smaller findings, end to end: login CSRF (finding 5), `__Host-`/`__Secure-`
//! cookie names, rate-limit headers on failed logins and the refresh token named in refresh
//! errors (finding 8).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, assert_error, find_cookie, header, read_login, set_cookies, spawn_app, spawn_app_with};

/// A cross-site form post to /login (a page on another site signing the victim in as the
/// attacker) is refused before any credential check, and sets no cookie. See: #13.
#[tokio::test]
async fn a_cross_site_login_form_is_refused_and_sets_no_cookie() {
    // Arrange
    let app = spawn_app().await;
    let user = app.register_user().await;
    let form = [("username", user.email.as_str()), ("password", PASSWORD)];
    // Act: what a browser sends for a form on https://evil.example.
    let response = app
        .post("/login")
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    // Assert
    assert!(set_cookies(response.headers()).is_empty());
    let (_, body) = assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    assert!(body["message"].as_str().unwrap().contains("Cross-site"), "{body}");

    // Without Origin, Sec-Fetch-Site alone tells (older browsers' form posts).
    let response = app
        .post("/login")
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;

    // A cross-site registration is refused too.
    let response = app
        .post("/register")
        .header("origin", "null")
        .json(&json!({"email": "x@example.com", "username": "xavier", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
}

#[tokio::test]
async fn same_origin_pages_listed_origins_and_api_clients_still_log_in() {
    // Arrange
    let app = spawn_app_with(|config| config.cors_origins = vec!["https://app.example.com".into()]).await;
    let user = app.register_user().await;
    let own_origin = app.address.clone();
    let cases: [(Option<&str>, Option<&str>); 4] = [
        (Some(own_origin.as_str()), Some("same-origin")),
        (Some("https://app.example.com"), Some("cross-site")),
        (None, None),
        (None, Some("none")),
    ];
    for (origin, site) in cases {
        // Act
        let mut request = app
            .post("/login")
            .json(&json!({"email": user.email, "password": PASSWORD}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        let response = request.send().await.unwrap();
        // Assert
        assert_eq!(response.status(), StatusCode::OK, "{origin:?} {site:?}");
    }
}

/// A failed login counts against the limits like any other, and says so (README: every
/// /login answer carries X-RateLimit-*). See: #13.
#[tokio::test]
async fn a_failed_login_carries_the_rate_limit_headers() {
    // Arrange
    let app = spawn_app().await;
    let user = app.register_user().await;
    // Act
    let first = app.login(&user.email, "not the password").await;
    let (headers, _) = assert_error(first, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let second = app.login(&user.email, "not the password").await;
    // Assert
    let limit: u64 = header(&headers, "x-ratelimit-limit").unwrap().parse().unwrap();
    let remaining: u64 = header(&headers, "x-ratelimit-remaining").unwrap().parse().unwrap();
    assert!(remaining < limit, "{remaining} of {limit}");
    assert!(header(&headers, "x-ratelimit-reset").is_some());
    let remaining_after: u64 = header(second.headers(), "x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(remaining_after, remaining - 1);
}

/// A bad refresh token is called a refresh token in the message and in WWW-Authenticate, not
/// an access token. See: #13.
#[tokio::test]
async fn refresh_errors_name_the_refresh_token() {
    // Arrange
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let mut forged = login.refresh.clone();
    forged.pop();
    forged.push(if login.refresh.ends_with('A') { 'B' } else { 'A' });
    // Act
    let response = app.refresh(&forged).await;
    // Assert
    let (headers, body) = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(body["message"], "Invalid refresh token");
    let challenge = header(&headers, "www-authenticate").unwrap();
    assert!(challenge.contains("The refresh token is invalid"), "{challenge}");
    // An access token's refusal keeps its own wording.
    let (headers, _) = assert_error(app.profile(&forged).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert!(
        header(&headers, "www-authenticate")
            .unwrap()
            .contains("The access token is invalid")
    );
}

/// COOKIE_PREFIXES: `__Host-access_token` (Path=/, Secure, no Domain) and
/// `__Secure-refresh_token`; requests authenticate with those names only. See: #13.
#[tokio::test]
async fn prefixed_cookies_are_set_and_read_and_plain_names_are_ignored() {
    // Arrange: Secure cookies (reqwest does not store cookies; the test sends them by hand).
    let app = spawn_app_with(|config| {
        config.cookie_secure = true;
        config.cookie_prefixes = true;
    })
    .await;
    let user = app.register_user().await;
    // Act
    let response = app.login(&user.email, PASSWORD).await;
    let cookies = set_cookies(response.headers());
    let login = read_login(response).await;
    // Assert
    let access = find_cookie(&cookies, "__Host-access_token").expect("__Host- access cookie");
    assert!(access.contains("; Secure") && access.contains("; Path=/;") && !access.contains("Domain"));
    let refresh = find_cookie(&cookies, "__Secure-refresh_token").expect("__Secure- refresh cookie");
    assert!(refresh.contains("; Secure") && refresh.contains("Path=/refresh"));
    let with = |cookie: String| app.get("/profile").header("cookie", cookie).send();
    assert_eq!(
        with(format!("__Host-access_token={}", login.access))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A plain-named cookie (what a sibling subdomain could plant) is not read.
    assert_eq!(
        with(format!("access_token={}", login.access)).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The refresh cookie under its prefixed name refreshes (with the CSRF header).
    let response = app
        .post("/refresh")
        .header("cookie", format!("__Secure-refresh_token={}", login.refresh))
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Look-alike emails (issue #13 finding 6): a Cyrillic letter among Latin ones and invisible
/// characters are refused; fullwidth and decomposed spellings are the same account as the
/// plain one, for registration and for login. See: #13.
#[tokio::test]
async fn look_alike_emails_cannot_make_a_second_account() {
    // Arrange
    let app = spawn_app().await;
    let created = app.register("ada@example.com", "ada", PASSWORD).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    // Act / Assert: refused spellings.
    for (email, code) in [
        ("\u{0430}da@example.com", "mixed_script"),
        ("a\u{200D}da@example.com", "invisible_character"),
        ("ada\u{202E}@example.com", "invisible_character"),
    ] {
        let response = app.register(email, "ada2", PASSWORD).await;
        crate::helpers::assert_field_error(response, "email", code).await;
    }
    // The same account under other spellings: a conflict, not a second account.
    for email in ["\u{FF21}\u{FF24}\u{FF21}@example.com", "ADA@EXAMPLE.COM"] {
        let response = app.register(email, "ada3", PASSWORD).await;
        assert_error(response, StatusCode::CONFLICT, "conflict").await;
    }
    // And the same account at login.
    let response = app.login("\u{FF41}da@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Decomposed accents are the composed ones.
    let created = app.register("jos\u{e9}@example.com", "jose", PASSWORD).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let response = app.register("jose\u{301}@example.com", "jose2", PASSWORD).await;
    assert_error(response, StatusCode::CONFLICT, "conflict").await;
}

/// Accounts stored before normalisation get the normal form at the next start, so the
/// look-alike spelling they were registered under no longer stands apart. See: #13.
#[tokio::test]
async fn stored_emails_are_normalised_at_start() {
    // Arrange: a row written with a fullwidth email, as an older version stored it (its
    // lower case as the normal form).
    let app = spawn_app().await;
    let user = app.register_user().await;
    let fullwidth = "\u{FF2D}\u{FF21}\u{FF38}@example.com";
    let old_form = fullwidth.to_lowercase();
    assert!(
        app.state
            .users
            .update_email(user.id, fullwidth, &old_form)
            .await
            .unwrap()
    );
    assert!(
        app.state
            .users
            .find_by_login("max@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // Act
    let app = app.restart().await;
    // Assert
    let stored = app
        .state
        .users
        .find_by_normalized_email("max@example.com")
        .await
        .unwrap();
    assert_eq!(stored.map(|u| u.id), Some(user.id));
    assert_eq!(app.login("max@example.com", PASSWORD).await.status(), StatusCode::OK);
    let response = app.register("max@example.com", "max2", PASSWORD).await;
    assert_error(response, StatusCode::CONFLICT, "conflict").await;
}
