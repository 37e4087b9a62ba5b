//! The hosted pages (C4): every page is HTML under a strict policy with no inline script, in
//! English or Chinese, with the configured brand; `/signin` keeps only safe return URLs; opening
//! a mailed link renders a form and redeems nothing (its POST still works after). The pages
//! themselves are driven in headless Chromium by `e2e/pages.test.mjs` (scripts/e2e.sh).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tessera_core::gateway::Domains;
use tessera_server::config::{Config, Vars};

use crate::helpers::{PASSWORD, TestApp, assert_error, header, spawn_app, spawn_app_with};

/// Every page, with a query that makes it render (a link page needs a plausible token).
const PAGES: [&str; 6] = [
    "/signin",
    "/signup",
    "/password/forgot",
    "/password/reset?token=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "/email/verify?token=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "/account/settings",
];

async fn page(app: &TestApp, path: &str) -> (reqwest::header::HeaderMap, String) {
    let response = app.get(path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

/// The value of `data-<name>="..."` in a page (as written, HTML-escaped).
fn data_attribute(html: &str, name: &str) -> Option<String> {
    let marker = format!(" data-{name}=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

/// Whether some tag has an `on...=` attribute.
fn has_event_handler(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    lower.match_indices(" on").any(|(at, _)| {
        let name: String = lower[at + 3..].chars().take_while(char::is_ascii_alphabetic).collect();
        !name.is_empty() && lower[at + 3 + name.len()..].starts_with('=')
    })
}

#[tokio::test]
async fn every_page_is_html_under_a_strict_policy_without_inline_script() {
    assert!(
        has_event_handler(r#"<a href="x" onclick="y">"#),
        "the check sees a handler"
    );
    let app = spawn_app().await;
    for path in PAGES {
        let (headers, html) = page(&app, path).await;
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        let csp = header(&headers, "content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        for needed in [
            "default-src 'none'",
            "script-src 'self';",
            "style-src 'self';",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(needed), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert_eq!(header(&headers, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(header(&headers, "cache-control"), Some("no-store"), "{path}");
        // One script, the shared file; no inline script, style or event handler.
        assert_eq!(html.matches("<script").count(), 1, "{path}");
        assert!(
            html.contains(r#"<script type="module" src="/pages/pages.js"></script>"#),
            "{path}"
        );
        assert!(!html.contains("<style") && !html.contains(" style="), "{path}");
        assert!(!has_event_handler(&html), "{path}: an inline event handler");
        assert!(!html.contains("javascript:"), "{path}");
        // Keyboard and screen readers: every visible input has its label, errors are announced.
        for id in html
            .split("<input id=\"")
            .skip(1)
            .map(|rest| &rest[..rest.find('"').unwrap()])
        {
            assert!(
                html.contains(&format!("<label for=\"{id}\">")),
                "{path}: #{id} has no label"
            );
        }
        assert!(html.contains(r#"role="alert""#), "{path}");
        assert!(html.contains(r##"<a class="skip" href="#main">"##), "{path}");
    }
    for (path, content_type, snippet) in [
        ("/pages/pages.js", "text/javascript; charset=utf-8", "'X-CSRF-Token'"),
        ("/pages/pages.css", "text/css; charset=utf-8", "--brand"),
        ("/pages/theme.css", "text/css; charset=utf-8", "--brand: #2f5bd3;"),
    ] {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header(response.headers(), "content-type"), Some(content_type), "{path}");
        assert!(
            header(response.headers(), "content-security-policy").is_some(),
            "{path}"
        );
        assert!(response.text().await.unwrap().contains(snippet), "{path}");
    }
}

#[tokio::test]
async fn pages_speak_chinese_by_query_or_accept_language_and_refuse_other_languages() {
    let app = spawn_app().await;
    let (headers, html) = page(&app, "/signin?lang=zh").await;
    assert!(html.contains(r#"<html lang="zh-CN">"#));
    assert!(html.contains("<h1>登录</h1>"), "{html}");
    assert!(html.contains("邮箱或用户名"));
    assert_eq!(header(&headers, "content-language"), Some("zh-CN"));
    // The links keep the language.
    assert!(html.contains(r#"href="/password/forgot?lang=zh""#), "{html}");

    let response = app
        .get("/account/settings")
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    let html = response.text().await.unwrap();
    assert!(html.contains("<h1>账户设置</h1>"), "{html}");
    // The query wins over the header.
    let response = app
        .get("/signup?lang=en")
        .header("accept-language", "zh")
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("<h1>Create an account</h1>"));
    // English by default.
    let (_, html) = page(&app, "/password/forgot").await;
    assert!(html.contains(r#"<html lang="en">"#) && html.contains("<h1>Forgot your password?</h1>"));

    let response = app.get("/signin?lang=fr").send().await.unwrap();
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
}

#[tokio::test]
async fn the_brand_is_configurable_and_escaped() {
    let app = spawn_app_with(|c| {
        c.product_name = "Acme <b>ID</b> & \"Co\"".to_owned();
        c.brand_color = "#123abc".to_owned();
        c.brand_logo = tessera_server::config::pages::parse_logo("https://cdn.example.com/acme.svg").ok();
    })
    .await;
    let (headers, html) = page(&app, "/signin").await;
    assert!(
        html.contains("<title>Sign in · Acme &lt;b&gt;ID&lt;/b&gt; &amp; &quot;Co&quot;</title>"),
        "{html}"
    );
    assert!(!html.contains("<b>ID</b>"));
    assert!(
        html.contains(r#"<img class="logo" src="https://cdn.example.com/acme.svg""#),
        "{html}"
    );
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(csp.contains("img-src 'self' data: https://cdn.example.com;"), "{csp}");
    let theme = app.get("/pages/theme.css").send().await.unwrap().text().await.unwrap();
    assert!(theme.contains("--brand: #123abc;"), "{theme}");
}

#[tokio::test]
async fn brand_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = || {
        let mut vars = Vars::new();
        vars.insert("DATA_DIR".into(), dir.path().display().to_string());
        vars
    };
    let config = Config::from_vars(&base()).unwrap();
    assert_eq!(config.product_name, "Tessera");
    assert_eq!(config.brand_color, "#2f5bd3");
    assert!(config.brand_logo.is_none());
    for (name, value) in [
        ("BRAND_COLOR", "red"),
        ("BRAND_COLOR", "#12345;}body{display:none"),
        ("BRAND_LOGO_URL", "http://cdn.example.com/logo.svg"),
        ("BRAND_LOGO_URL", "//evil.com/logo.svg"),
        ("BRAND_LOGO_URL", "javascript:alert(1)"),
        ("PRODUCT_NAME", "bad\u{1b}[31mname"),
    ] {
        let mut vars = base();
        vars.insert(name.into(), value.into());
        let error = Config::from_vars(&vars).expect_err(value).to_string();
        assert!(error.contains(name), "{error}");
    }
    let mut vars = base();
    vars.insert("BRAND_LOGO_URL".into(), "/static/logo.svg".into());
    vars.insert("BRAND_COLOR".into(), "#ABC".into());
    let config = Config::from_vars(&vars).unwrap();
    assert_eq!(config.brand_logo.unwrap().src, "/static/logo.svg");
    assert_eq!(config.brand_color, "#abc");
}

#[tokio::test]
async fn signin_keeps_only_safe_return_urls() {
    let app = spawn_app_with(|c| c.gateway_domains = Domains::parse("example.com").unwrap()).await;
    let cases = [
        ("", "/account/settings"),
        ("?return_to=/app/dashboard%3Ftab%3D1", "/app/dashboard?tab=1"),
        ("?rd=https%3A%2F%2Fapp.example.com%2Fx", "https://app.example.com/x"),
        (
            "?return_to=https%3A%2F%2Fapp.example.com%2F",
            "https://app.example.com/",
        ),
        ("?return_to=%2F%2Fevil.com", "/account/settings"),
        ("?return_to=%2F%5Cevil.com", "/account/settings"),
        ("?return_to=/%252F%252Fevil.com", "/account/settings"),
        ("?return_to=/%2F%2Fevil.com", "/account/settings"),
        ("?return_to=https%3A%2F%2Fevil.com%2F", "/account/settings"),
        (
            "?return_to=https%3A%2F%2Fapp.example.com%40evil.com%2F",
            "/account/settings",
        ),
        ("?return_to=http%3A%2F%2Fapp.example.com%2F", "/account/settings"),
        ("?return_to=javascript%3Aalert(1)", "/account/settings"),
        ("?return_to=%09%2F%2Fevil.com", "/account/settings"),
        ("?return_to=/ok%0A/evil", "/account/settings"),
    ];
    for (query, expected) in cases {
        let (_, html) = page(&app, &format!("/signin{query}")).await;
        let kept = data_attribute(&html, "return-to").unwrap().replace("&amp;", "&");
        // `/%252F%252F` decodes once to `/%2F%2F`, which the core refuses too.
        assert_eq!(kept, expected, "{query}");
    }
    // The sign-up link carries a kept return URL on.
    let (_, html) = page(&app, "/signin?return_to=/app").await;
    assert!(
        html.contains(r#"href="/signup?lang=en&amp;return_to=%2Fapp""#),
        "{html}"
    );
}

#[tokio::test]
async fn link_pages_need_a_plausible_token_and_refuse_other_credentials() {
    let app = spawn_app().await;
    for path in [
        "/password/reset",
        "/password/reset?token=",
        "/email/verify?token=has%20space",
        "/email/verify?lang=en",
        "/password/reset?token=%3Cscript%3E",
    ] {
        let response = app.get(path).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_link").await;
    }
    let response = app.get("/password/reset?token=abc&password=x").send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    // The POST reads the token from its body only: a token in its URL is refused; methods the
    // path does not serve are 405, as on every route.
    let response = app
        .post("/password/reset?token=abc")
        .json(&json!({ "token": "abc", "new_password": "violet harbour lantern 42" }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::TRACE] {
        let response = app
            .client
            .request(method.clone(), app.url("/email/verify?token=abc&lang=en"))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    }
    // Every other page refuses a credential in its query, as every route does.
    let response = app.get("/signin?password=x").send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    // The forms post JSON to the API: a plain form post to a page is 405, not a sign-in.
    let response = app
        .post("/signin")
        .form(&[("login", "a"), ("password", "b")])
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

/// The `token` of the newest mailed link to `path` in the outbox (DATA_DIR/mail, no SMTP).
async fn mailed_token(app: &TestApp, path: &str) -> String {
    let dir = app.dir.path().join("mail");
    for _ in 0..100 {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for file in files.iter().rev() {
            let raw = std::fs::read_to_string(file).unwrap_or_default();
            // Quoted-printable: soft line breaks and `=3D` for `=`.
            let text = raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
            let marker = format!("{path}?token=");
            if let Some(at) = text.find(&marker) {
                return text[at + marker.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail with a {path} link in {}", dir.display());
}

#[tokio::test]
async fn opening_a_mailed_link_redeems_nothing_and_its_form_post_still_works() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    // Verification (the sign-up mail): the page renders the token into its form, twice over.
    let token = mailed_token(&app, "/email/verify").await;
    for _ in 0..2 {
        let (_, html) = page(&app, &format!("/email/verify?token={token}")).await;
        assert!(html.contains(&format!(r#"<input type="hidden" name="token" value="{token}">"#)));
        assert!(html.contains(r#"<form id="verify-form" method="post">"#));
        let head = app
            .client
            .head(app.url(&format!("/email/verify?token={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
    }
    let verified = app
        .post("/email/verify")
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), StatusCode::OK);
    // Spent: the page still opens (it cannot tell), but its POST says the link is invalid.
    page(&app, &format!("/email/verify?token={token}")).await;
    let again = app
        .post("/email/verify")
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_link").await;

    // Password reset, in Chinese.
    let forgot = app
        .post("/password/forgot")
        .json(&json!({ "email": user.email }))
        .send()
        .await
        .unwrap();
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let token = mailed_token(&app, "/password/reset").await;
    let (_, html) = page(&app, &format!("/password/reset?token={token}&lang=zh")).await;
    assert!(html.contains("<h1>设置新密码</h1>"), "{html}");
    page(&app, &format!("/password/reset?token={token}")).await;
    let new_password = "violet harbour lantern 42";
    let reset = app
        .post("/password/reset")
        .json(&json!({ "token": token, "new_password": new_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(app.login(&user.email, new_password).await.status(), StatusCode::OK);
    assert_eq!(
        app.login(&user.email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn signup_tells_what_verification_asks_for() {
    use tessera_server::config::mail::EmailVerification;
    for (mode, words) in [
        (
            EmailVerification::Required,
            "open it to verify your address, then sign in",
        ),
        (EmailVerification::Optional, "You can sign in now."),
        (EmailVerification::Off, "Account created. You can sign in now."),
    ] {
        let app = spawn_app_with(|c| c.email_verification = mode).await;
        let (_, html) = page(&app, "/signup").await;
        assert_eq!(data_attribute(&html, "verification").as_deref(), Some(mode.as_str()));
        assert!(data_attribute(&html, "done").unwrap().contains(words), "{html}");
    }
}

/// The `<input ...>` tag with this id.
fn input_tag<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<input id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    &html[start..start + html[start..].find('>').unwrap()]
}

#[tokio::test]
async fn the_second_factor_has_its_step_in_signin_and_its_section_in_settings() {
    let app = spawn_app().await;
    let (headers, html) = page(&app, "/signin").await;
    // The second step is in the page, hidden until POST /login answers mfa_required.
    assert!(
        html.contains(r#"<form id="mfa-form" method="post" aria-labelledby="mfa-heading" hidden>"#),
        "{html}"
    );
    let code = input_tag(&html, "mfa-code");
    assert!(
        code.contains(r#"autocomplete="one-time-code""#) && code.contains(r#"inputmode="numeric""#),
        "{code}"
    );
    assert!(
        code.contains(r#"aria-describedby="mfa-code-hint mfa-code-error""#),
        "{code}"
    );
    // The recovery-code field waits disabled (neither validated nor sent) behind the switch.
    assert!(
        input_tag(&html, "recovery-code")
            .ends_with(" disabled aria-describedby=\"recovery-code-hint recovery-code-error\"")
    );
    assert!(
        html.contains(r#"<p class="hint" id="mfa-code-hint">Enter the 6-digit code from your authenticator app.</p>"#)
    );
    assert!(html.contains(r#"<button type="button" id="mfa-switch" class="link" aria-controls="mfa-form">Use a recovery code instead</button>"#));
    // The words the script writes itself.
    assert_eq!(
        data_attribute(&html, "mfa-expired").as_deref(),
        Some("This sign-in attempt expired, start again.")
    );
    assert_eq!(
        data_attribute(&html, "use-authenticator").as_deref(),
        Some("Use your authenticator app instead")
    );
    assert_eq!(
        data_attribute(&html, "mfa-attempts-left").as_deref(),
        Some("Attempts left: {n}.")
    );
    // The enrolment's QR code is shown as a data: image: `data:` is allowed for images only.
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(csp.contains("img-src 'self' data:;"), "{csp}");
    assert_eq!(csp.matches("data:").count(), 1, "{csp}");

    let (_, html) = page(&app, "/account/settings").await;
    assert!(html.contains(r#"<section id="mfa-section" aria-labelledby="mfa-section-heading">"#));
    assert!(html.contains(r#"<h2 id="mfa-section-heading">Two-factor authentication</h2>"#));
    for form in ["mfa-setup-form", "mfa-confirm-form", "recovery-form", "mfa-remove-form"] {
        assert!(html.contains(&format!(r#"<form id="{form}" method="post">"#)), "{form}");
    }
    for id in ["mfa-setup-password", "recovery-password", "mfa-remove-password"] {
        let tag = input_tag(&html, id);
        assert!(
            tag.contains(r#"name="password" type="password" autocomplete="current-password""#),
            "{tag}"
        );
    }
    assert!(input_tag(&html, "mfa-confirm-code").contains(r#"autocomplete="one-time-code""#));
    // The QR image has its text alternative and no source until an enrolment starts.
    assert!(html.contains(
        r#"<img id="mfa-qr" class="qr" alt="QR code to add this account to an authenticator app" width="200" height="200">"#
    ));
    assert!(html.contains(r#"<ol id="recovery-code-list" class="codes"></ol>"#));
    assert!(html.contains(r#"<div id="mfa-off" hidden>"#) && html.contains(r#"<div id="mfa-on" hidden>"#));
    assert_eq!(
        data_attribute(&html, "recovery-codes-left").as_deref(),
        Some("Recovery codes left: {n}.")
    );

    // Both steps speak Chinese too.
    let (_, html) = page(&app, "/signin?lang=zh").await;
    assert!(
        html.contains("请输入身份验证器应用中的 6 位验证码。") && html.contains(">改用恢复码<"),
        "{html}"
    );
    let (_, html) = page(&app, "/account/settings?lang=zh").await;
    assert!(html.contains(r#"<h2 id="mfa-section-heading">两步验证</h2>"#), "{html}");
    assert!(
        html.contains(">设置身份验证器应用<") && html.contains(">我已保存<"),
        "{html}"
    );
}
