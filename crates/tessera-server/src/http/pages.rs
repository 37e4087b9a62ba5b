//! Tessera's hosted pages (C4): sign-in, sign-up, forgot and reset password, verify email, and
//! account settings, in English and Chinese, with the operator's product name, colour and logo.
//!
//! The pages are HTML rendered here (the words from [`super::page_text`], every configured or
//! requested value escaped), plus one shared script and style sheet built into the binary with
//! `include_str!` (`assets/pages/`: no build step, no CDN) and `GET /pages/theme.css`, the brand
//! colour from the validated configuration. Every page is served under a strict
//! Content-Security-Policy (the demo's: same-origin scripts, styles and `fetch` only, no inline
//! script or style, no framing; plus the logo's origin in `img-src` when BRAND_LOGO_URL is on
//! another host). The script talks to the JSON API with the HttpOnly cookies and `X-CSRF-Token`,
//! like the demo, and sends the page's language as `Accept-Language`, so the API's own messages
//! match the page.
//!
//! The language is the `lang` query parameter (`en` or `zh`) when given, else `Accept-Language`
//! ([`Lang::from_headers`]). `GET /password/reset?token=` and `GET /email/verify?token=` are the
//! links mails carry: they render a form and redeem nothing (a mail scanner fetching the link
//! burns nothing); only the form's `POST` (the JSON handlers in `email.rs`, on the same paths)
//! does. `/signin` follows `return_to` (or forward auth's `rd`) only when
//! [`tessera_core::gateway::return_target`] accepts it: a same-origin path or a host of
//! GATEWAY_DOMAINS; anything else falls back to `/account/settings`.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tessera_core::gateway::return_target;

use super::AppState;
use super::error::{AppError, AppResult, ErrorCode, FieldError};
use super::i18n::Lang;
use super::page_text::text;
use crate::config::Config;
use crate::config::mail::EmailVerification;

const PAGES_JS: &str = include_str!("../../assets/pages/pages.js");
const PAGES_CSS: &str = include_str!("../../assets/pages/pages.css");

/// Where `/signin` sends the browser when no acceptable `return_to` was given.
pub const DEFAULT_RETURN: &str = "/account/settings";

/// Longest token a mailed link may carry (the tokens are 43 characters).
const MAX_LINK_TOKEN_CHARS: usize = 128;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signin", get(signin))
        .route("/signup", get(signup))
        .route("/account/settings", get(settings))
        .route("/pages/pages.js", get(script))
        .route("/pages/pages.css", get(style))
        .route("/pages/theme.css", get(theme))
}

/// The query of a page request, as written (order kept, for the language links).
type Params = Vec<(String, String)>;

fn parse_query(query: Option<&str>) -> Params {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The page language: `lang` when given (`en` or `zh`; anything else is 422), else
/// `Accept-Language`.
fn page_lang(params: &Params, headers: &HeaderMap) -> AppResult<Lang> {
    let Some(raw) = param(params, "lang") else {
        return Ok(Lang::from_headers(headers));
    };
    match raw.to_ascii_lowercase().as_str() {
        "en" | "en-us" | "en-gb" => Ok(Lang::En),
        "zh" | "zh-cn" | "zh-hans" => Ok(Lang::Zh),
        _ => Err(AppError::Validation(vec![FieldError::new(
            "lang",
            "invalid_choice",
            "lang must be en or zh",
        )])),
    }
}

fn lang_param(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Zh => "zh",
    }
}

fn html_lang(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Zh => "zh-CN",
    }
}

/// Text made safe for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `path?lang=..&name=value..`, query-encoded (not yet HTML-escaped).
fn href(path: &str, lang: Lang, extra: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("lang", lang_param(lang));
    for (name, value) in extra {
        query.append_pair(name, value);
    }
    format!("{path}?{}", query.finish())
}

/// The pages' policy: the demo's, plus `data:` images (the settings page shows the TOTP
/// enrolment's QR code, an SVG drawn by the server, as a `data:image/svg+xml` `<img>`: an image
/// never runs script) and the logo's origin in `img-src` when it has one.
pub fn content_security_policy(config: &Config) -> String {
    let logo = config
        .brand_logo
        .as_ref()
        .and_then(|logo| logo.origin.as_deref())
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{logo}; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

fn policy_header(config: &Config) -> HeaderValue {
    HeaderValue::from_str(&content_security_policy(config))
        .unwrap_or_else(|_| HeaderValue::from_static(super::demo::CONTENT_SECURITY_POLICY))
}

/// One page to render.
struct Page<'a> {
    /// `data-page` of `<body>`: which part of the script runs.
    id: &'static str,
    /// The key of the `<h1>` and `<title>`.
    title: &'static str,
    lang: Lang,
    /// The page's path (for the language links).
    path: &'static str,
    /// The request's query (kept in the language links, `lang` replaced).
    params: &'a Params,
    /// More `data-*` attributes of `<body>` (names without `data-`; values escaped here).
    data: Vec<(&'static str, String)>,
    /// Words the script writes itself (keys of [`text`]).
    strings: &'static [&'static str],
    /// The `<main>` content after the heading, already escaped.
    body: String,
}

fn render(config: &Config, page: Page<'_>) -> Response {
    let lang = page.lang;
    let t = |key| text(key, lang);
    let product = escape(&config.product_name);
    let title = t(page.title);
    let mut data = String::new();
    for (name, value) in &page.data {
        let _ = write!(data, " data-{name}=\"{}\"", escape(value));
    }
    let logo = config.brand_logo.as_ref().map_or_else(String::new, |logo| {
        format!(
            r#"<img class="logo" src="{}" alt="" width="32" height="32">"#,
            escape(&logo.src)
        )
    });
    let mut switch = String::new();
    for (other, label) in [(Lang::En, "English"), (Lang::Zh, "中文")] {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in page.params.iter().filter(|(key, _)| key != "lang") {
            query.append_pair(key, value);
        }
        query.append_pair("lang", lang_param(other));
        let current = if other == lang { r#" aria-current="true""# } else { "" };
        let _ = write!(
            switch,
            r#"<a href="{}" hreflang="{}" lang="{}"{current}>{label}</a> "#,
            escape(&format!("{}?{}", page.path, query.finish())),
            html_lang(other),
            html_lang(other),
        );
    }
    let mut strings = String::new();
    for key in page.strings {
        let _ = write!(strings, " data-{}=\"{}\"", key.replace('_', "-"), escape(t(key)));
    }
    let html = format!(
        r##"<!doctype html>
<html lang="{html_lang}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} · {product}</title>
  <link rel="icon" href="/demo/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/pages/pages.css">
  <link rel="stylesheet" href="/pages/theme.css">
  <script type="module" src="/pages/pages.js"></script>
</head>
<body data-page="{id}" data-lang="{lang_param}"{data}>
  <a class="skip" href="#main">{skip}</a>
  <header class="brand">
    <a class="product" href="{home}">{logo}<span id="product-name">{product}</span></a>
    <nav class="languages" aria-label="{language}">{switch}</nav>
  </header>
  <main id="main" tabindex="-1">
    <h1>{title}</h1>
{body}
  </main>
  <div id="strings" hidden{strings}></div>
</body>
</html>
"##,
        html_lang = html_lang(lang),
        id = page.id,
        lang_param = lang_param(lang),
        skip = t("skip"),
        home = escape(&href("/signin", lang, &[])),
        language = t("language"),
        body = page.body,
    );
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, policy_header(config)),
            (header::CONTENT_LANGUAGE, HeaderValue::from_static(html_lang(lang))),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        html,
    )
        .into_response()
}

/// A labelled input with its hint and its error slot (both named by `aria-describedby`, so a
/// screen reader reads them with the field).
struct Field {
    id: &'static str,
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    autocomplete: &'static str,
    hint: Option<&'static str>,
    extra: &'static str,
}

fn field(lang: Lang, f: Field) -> String {
    let t = |key| text(key, lang);
    let hint = f
        .hint
        .map(|key| format!(r#"<p class="hint" id="{}-hint">{}</p>"#, f.id, t(key)))
        .unwrap_or_default();
    let described = if f.hint.is_some() {
        format!("{0}-hint {0}-error", f.id)
    } else {
        format!("{}-error", f.id)
    };
    format!(
        r#"      <div class="field">
        <label for="{id}">{label}</label>
        <input id="{id}" name="{name}" type="{kind}" autocomplete="{ac}" required{extra} aria-describedby="{described}">
        {hint}<p class="field-error" id="{id}-error"></p>
      </div>
"#,
        id = f.id,
        name = f.name,
        label = t(f.label),
        kind = f.kind,
        ac = f.autocomplete,
        extra = f.extra,
    )
}

/// A form: its live notice first (errors and results are announced), then the fields, then
/// the submit button.
fn form(id: &str, fields: &str, button: &str) -> String {
    format!(
        r#"    <form id="{id}" method="post">
      <div class="notice" role="alert" aria-live="assertive"></div>
{fields}      <button type="submit">{button}</button>
    </form>
"#
    )
}

const PARAM_LANG: &str = "`en` or `zh`; unset: from `Accept-Language`.";

/// The sign-in page.
#[utoipa::path(
    get,
    path = "/signin",
    tag = "pages",
    params(
        ("lang" = Option<String>, Query, description = PARAM_LANG, pattern = "^(en|zh)$"),
        ("return_to" = Option<String>, Query, description = "Where to go once signed in: a path on this origin \
            (one leading `/`) or an https URL on a domain of GATEWAY_DOMAINS; anything else: `/account/settings`."),
        ("rd" = Option<String>, Query, description = "Forward auth's name for `return_to` (used when `return_to` is absent)."),
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 422, response = super::openapi::ValidationFailed),
    ),
)]
pub(super) async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = parse_query(query.as_deref());
    let lang = page_lang(&params, &headers)?;
    let t = |key| text(key, lang);
    let asked = param(&params, "return_to").or_else(|| param(&params, "rd"));
    let return_to = asked
        .and_then(|raw| return_target(raw, &state.config.gateway_domains))
        .map_or_else(|| DEFAULT_RETURN.to_owned(), |target| target.as_location());
    let fields = field(
        lang,
        Field {
            id: "login",
            name: "login",
            label: "login",
            kind: "text",
            autocomplete: "username",
            hint: None,
            extra: r#" autocapitalize="none" spellcheck="false""#,
        },
    ) + &field(
        lang,
        Field {
            id: "password",
            name: "password",
            label: "password",
            kind: "password",
            autocomplete: "current-password",
            hint: None,
            extra: "",
        },
    );
    let keep: Vec<(&str, &str)> = if return_to == DEFAULT_RETURN {
        Vec::new()
    } else {
        vec![("return_to", return_to.as_str())]
    };
    let body = format!(
        r#"{form}    <div id="passkey-signin-box">
      <div class="notice" id="passkey-signin-notice" role="alert" aria-live="assertive"></div>
      <button type="button" id="passkey-signin" class="secondary">{passkey}</button>
    </div>
{mfa}    <p class="links"><a href="{forgot}">{forgot_text}</a> <a href="{signup}">{signup_text}</a></p>"#,
        form = form("signin-form", &fields, t("signin_button")),
        passkey = t("passkey_signin_button"),
        mfa = mfa_step(lang),
        forgot = escape(&href("/password/forgot", lang, &[])),
        forgot_text = t("forgot_link"),
        signup = escape(&href("/signup", lang, &keep)),
        signup_text = t("signup_link"),
    );
    Ok(render(
        &state.config,
        Page {
            id: "signin",
            title: "signin_title",
            lang,
            path: "/signin",
            params: &params,
            data: vec![("return-to", return_to)],
            strings: &[
                "network_error",
                "use_recovery_code",
                "use_authenticator",
                "mfa_wrong_code",
                "mfa_attempts_left",
                "mfa_expired",
                "passkey_failed",
                "passkeys_unsupported",
            ],
            body,
        },
    ))
}

/// The sign-in page's second step, hidden until `POST /login` answers `mfa_required`: a code
/// from the authenticator app, or (after the switch) a recovery code. The field not in use is
/// disabled by the script, so the browser neither validates nor sends it.
fn mfa_step(lang: Lang) -> String {
    let t = |key| text(key, lang);
    let fields = field(
        lang,
        Field {
            id: "mfa-code",
            name: "code",
            label: "mfa_code",
            kind: "text",
            autocomplete: "one-time-code",
            hint: Some("mfa_code_hint"),
            extra: r#" inputmode="numeric" maxlength="12" autocapitalize="none" spellcheck="false""#,
        },
    ) + &field(
        lang,
        Field {
            id: "recovery-code",
            name: "recovery_code",
            label: "recovery_code",
            kind: "text",
            autocomplete: "off",
            hint: Some("recovery_code_hint"),
            extra: r#" maxlength="64" autocapitalize="none" spellcheck="false" disabled"#,
        },
    );
    format!(
        r#"    <form id="mfa-form" method="post" aria-labelledby="mfa-heading" hidden>
      <h2 id="mfa-heading">{heading}</h2>
      <div class="notice" role="alert" aria-live="assertive"></div>
{fields}      <button type="submit">{verify}</button>
      <p class="links"><button type="button" id="mfa-switch" class="link" aria-controls="mfa-form">{switch}</button> <button type="button" id="mfa-passkey" class="link" hidden>{passkey}</button> <button type="button" id="mfa-restart" class="link">{restart}</button></p>
    </form>
"#,
        heading = t("mfa_title"),
        passkey = t("use_passkey"),
        verify = t("mfa_verify_button"),
        switch = t("use_recovery_code"),
        restart = t("mfa_start_again"),
    )
}

/// The sign-up page.
#[utoipa::path(
    get,
    path = "/signup",
    tag = "pages",
    params(
        ("lang" = Option<String>, Query, description = PARAM_LANG, pattern = "^(en|zh)$"),
        ("return_to" = Option<String>, Query, description = "Passed on to the sign-in link shown once the account exists."),
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 422, response = super::openapi::ValidationFailed),
    ),
)]
pub(super) async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = parse_query(query.as_deref());
    let lang = page_lang(&params, &headers)?;
    let t = |key| text(key, lang);
    let return_to = param(&params, "return_to")
        .and_then(|raw| return_target(raw, &state.config.gateway_domains))
        .map(|target| target.as_location());
    let keep: Vec<(&str, &str)> = return_to.iter().map(|r| ("return_to", r.as_str())).collect();
    let done = match state.config.email_verification {
        EmailVerification::Required => "signup_done_required",
        EmailVerification::Optional => "signup_done_optional",
        EmailVerification::Off => "signup_done_off",
    };
    let fields = [
        field(
            lang,
            Field {
                id: "email",
                name: "email",
                label: "email",
                kind: "email",
                autocomplete: "email",
                hint: None,
                extra: r#" maxlength="254""#,
            },
        ),
        field(
            lang,
            Field {
                id: "username",
                name: "username",
                label: "username",
                kind: "text",
                autocomplete: "username",
                hint: Some("username_hint"),
                extra: r#" minlength="3" maxlength="32" autocapitalize="none" spellcheck="false""#,
            },
        ),
        field(
            lang,
            Field {
                id: "password",
                name: "password",
                label: "password",
                kind: "password",
                autocomplete: "new-password",
                hint: Some("password_hint"),
                extra: r#" minlength="8" maxlength="128""#,
            },
        ),
    ]
    .concat();
    let signin = escape(&href("/signin", lang, &keep));
    let body = format!(
        r#"{form}    <p class="links"><a id="signin-link" href="{signin}">{signin_text}</a></p>"#,
        form = form("signup-form", &fields, t("signup_button")),
        signin_text = t("signin_link"),
    );
    Ok(render(
        &state.config,
        Page {
            id: "signup",
            title: "signup_title",
            lang,
            path: "/signup",
            params: &params,
            data: vec![
                ("verification", state.config.email_verification.as_str().to_owned()),
                ("done", t(done).to_owned()),
            ],
            strings: &["network_error"],
            body,
        },
    ))
}

/// The forgot-password page (its form posts to `POST /password/forgot`).
#[utoipa::path(
    get,
    path = "/password/forgot",
    tag = "pages",
    params(("lang" = Option<String>, Query, description = PARAM_LANG, pattern = "^(en|zh)$")),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 422, response = super::openapi::ValidationFailed),
    ),
)]
pub(super) async fn forgot(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = parse_query(query.as_deref());
    let lang = page_lang(&params, &headers)?;
    let t = |key| text(key, lang);
    let fields = field(
        lang,
        Field {
            id: "email",
            name: "email",
            label: "email",
            kind: "email",
            autocomplete: "email",
            hint: None,
            extra: r#" maxlength="254""#,
        },
    );
    let body = format!(
        r#"    <p>{intro}</p>
{form}    <p class="links"><a href="{signin}">{signin_text}</a></p>"#,
        intro = t("forgot_intro"),
        form = form("forgot-form", &fields, t("forgot_button")),
        signin = escape(&href("/signin", lang, &[])),
        signin_text = t("signin_link"),
    );
    Ok(render(
        &state.config,
        Page {
            id: "forgot",
            title: "forgot_title",
            lang,
            path: "/password/forgot",
            params: &params,
            data: Vec::new(),
            strings: &["network_error"],
            body,
        },
    ))
}

/// The token of a mailed link, when it could be one (else 400 `invalid_link`, as its POST
/// would answer).
fn link_token(params: &Params) -> AppResult<String> {
    let token = param(params, "token").unwrap_or_default();
    let plausible = !token.is_empty()
        && token.len() <= MAX_LINK_TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return Err(AppError::Code(ErrorCode::InvalidLink));
    }
    Ok(token.to_owned())
}

/// The page a password-reset mail links to: a form for the new password. Opening it redeems
/// nothing; its form's `POST /password/reset` does.
#[utoipa::path(
    get,
    path = "/password/reset",
    tag = "pages",
    params(
        ("token" = String, Query, description = "The token of the mailed link.", pattern = "^[A-Za-z0-9_-]{1,128}$"),
        ("lang" = Option<String>, Query, description = PARAM_LANG, pattern = "^(en|zh)$"),
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 400, response = super::openapi::BadRequest),
        (status = 422, response = super::openapi::ValidationFailed),
    ),
)]
pub(super) async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = parse_query(query.as_deref());
    let lang = page_lang(&params, &headers)?;
    let t = |key| text(key, lang);
    let token = link_token(&params)?;
    let fields = format!(
        "      <input type=\"hidden\" name=\"token\" value=\"{}\">\n",
        escape(&token)
    ) + &field(
        lang,
        Field {
            id: "new-password",
            name: "new_password",
            label: "new_password",
            kind: "password",
            autocomplete: "new-password",
            hint: Some("password_hint"),
            extra: r#" minlength="8" maxlength="128""#,
        },
    ) + &field(
        lang,
        Field {
            id: "confirm-password",
            name: "confirm_password",
            label: "confirm_password",
            kind: "password",
            autocomplete: "new-password",
            hint: None,
            extra: r#" minlength="8" maxlength="128""#,
        },
    );
    let body = format!(
        r#"    <p>{intro}</p>
{form}    <p class="links"><a id="signin-link" href="{signin}">{signin_text}</a> <a href="{forgot}">{new_link}</a></p>"#,
        intro = t("reset_intro"),
        form = form("reset-form", &fields, t("reset_button")),
        signin = escape(&href("/signin", lang, &[])),
        signin_text = t("signin_link"),
        forgot = escape(&href("/password/forgot", lang, &[])),
        new_link = t("new_link"),
    );
    Ok(render(
        &state.config,
        Page {
            id: "reset",
            title: "reset_title",
            lang,
            path: "/password/reset",
            params: &params,
            data: Vec::new(),
            strings: &["network_error", "passwords_differ"],
            body,
        },
    ))
}

/// The page a verification (or email-change) mail links to: one button. Opening it redeems
/// nothing; the button's `POST /email/verify` does.
#[utoipa::path(
    get,
    path = "/email/verify",
    tag = "pages",
    params(
        ("token" = String, Query, description = "The token of the mailed link.", pattern = "^[A-Za-z0-9_-]{1,128}$"),
        ("lang" = Option<String>, Query, description = PARAM_LANG, pattern = "^(en|zh)$"),
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 400, response = super::openapi::BadRequest),
        (status = 422, response = super::openapi::ValidationFailed),
    ),
)]
pub(super) async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = parse_query(query.as_deref());
    let lang = page_lang(&params, &headers)?;
    let t = |key| text(key, lang);
    let token = link_token(&params)?;
    let fields = format!(
        "      <input type=\"hidden\" name=\"token\" value=\"{}\">\n",
        escape(&token)
    );
    let body = format!(
        r#"    <p>{intro}</p>
{form}    <p class="links"><a href="{settings}">{settings_text}</a> <a href="{signin}">{signin_text}</a></p>"#,
        intro = t("verify_intro"),
        form = form("verify-form", &fields, t("verify_button")),
        settings = escape(&href("/account/settings", lang, &[])),
        settings_text = t("settings_link"),
        signin = escape(&href("/signin", lang, &[])),
        signin_text = t("signin_link"),
    );
    Ok(render(
        &state.config,
        Page {
            id: "verify",
            title: "verify_title",
            lang,
            path: "/email/verify",
            params: &params,
            data: Vec::new(),
            strings: &["network_error"],
            body,
        },
    ))
}

/// A settings section: a heading, an optional hint, and its content.
fn section(id: &str, heading: &str, hint: Option<&str>, content: &str) -> String {
    let hint = hint
        .map(|h| format!("      <p class=\"hint\">{h}</p>\n"))
        .unwrap_or_default();
    format!(
        r#"    <section id="{id}" aria-labelledby="{id}-heading">
      <h2 id="{id}-heading">{heading}</h2>
{hint}{content}    </section>
"#
    )
}

/// The settings' "Two-factor authentication" section. The script shows one part at a time, from
/// `GET /account/mfa`: not enrolled, the set-up form (password), then the QR code, the key and
/// the first code; enrolled, new recovery codes and the removal (password, then a confirmation
/// step). Recovery codes are shown once, until "I have saved them".
fn mfa_settings(lang: Lang) -> String {
    let t = |key| text(key, lang);
    let password = |id: &'static str| {
        field(
            lang,
            Field {
                id,
                name: "password",
                label: "current_password",
                kind: "password",
                autocomplete: "current-password",
                hint: None,
                extra: "",
            },
        )
    };
    let code = field(
        lang,
        Field {
            id: "mfa-confirm-code",
            name: "code",
            label: "mfa_code",
            kind: "text",
            autocomplete: "one-time-code",
            hint: Some("mfa_code_hint"),
            extra: r#" inputmode="numeric" maxlength="12" autocapitalize="none" spellcheck="false""#,
        },
    );
    format!(
        r#"      <p id="mfa-status" role="status" tabindex="-1">{loading}</p>
      <div class="notice" id="mfa-notice" role="alert" aria-live="assertive"></div>
      <div id="mfa-off" hidden>
{setup}      </div>
      <div id="mfa-enrol" hidden>
        <p id="mfa-scan">{scan}</p>
        <img id="mfa-qr" class="qr" alt="{qr_alt}" width="200" height="200">
        <p>{key}: <code id="mfa-secret"></code></p>
{confirm}        <button type="button" id="mfa-enrol-cancel" class="secondary">{cancel}</button>
      </div>
      <div id="recovery-codes" class="codes-box" role="status" tabindex="-1" hidden>
        <p>{codes_intro}</p>
        <ol id="recovery-code-list" class="codes"></ol>
        <button type="button" id="recovery-codes-saved">{saved}</button>
      </div>
      <div id="mfa-on" hidden>
        <h3>{new_codes}</h3>
        <p class="hint">{new_codes_hint}</p>
{recovery}        <h3>{remove}</h3>
{remove_form}        <div id="mfa-remove-confirm" hidden>
          <p id="mfa-remove-confirm-text">{remove_confirm}</p>
          <button type="button" id="mfa-remove-confirm-button" class="danger" aria-describedby="mfa-remove-confirm-text">{remove_confirm_button}</button>
          <button type="button" id="mfa-remove-cancel" class="secondary">{cancel}</button>
        </div>
      </div>
"#,
        loading = t("loading"),
        setup = form("mfa-setup-form", &password("mfa-setup-password"), t("mfa_setup_button")),
        scan = t("mfa_scan"),
        qr_alt = t("mfa_qr_alt"),
        key = t("mfa_secret"),
        confirm = form("mfa-confirm-form", &code, t("mfa_confirm_button")),
        cancel = t("cancel"),
        codes_intro = t("recovery_codes_intro"),
        saved = t("recovery_codes_saved"),
        new_codes = t("recovery_new"),
        new_codes_hint = t("recovery_new_hint"),
        recovery = form("recovery-form", &password("recovery-password"), t("recovery_new")),
        remove = t("mfa_remove"),
        remove_form = form(
            "mfa-remove-form",
            &password("mfa-remove-password"),
            t("mfa_remove_button")
        ),
        remove_confirm = t("mfa_remove_confirm"),
        remove_confirm_button = t("mfa_remove_confirm_button"),
    )
}

/// The settings' "Passkeys" section: the list (name, added, last used, a Remove button each),
/// the form that adds one (a name and the password), and the removal's password form, shown
/// for the passkey whose Remove was pressed.
fn passkey_settings(lang: Lang) -> String {
    let t = |key| text(key, lang);
    let password = |id: &'static str| {
        field(
            lang,
            Field {
                id,
                name: "password",
                label: "current_password",
                kind: "password",
                autocomplete: "current-password",
                hint: None,
                extra: "",
            },
        )
    };
    let add_fields = field(
        lang,
        Field {
            id: "passkey-name",
            name: "name",
            label: "passkey_name",
            kind: "text",
            autocomplete: "off",
            hint: None,
            extra: r#" maxlength="64""#,
        },
    ) + &password("passkey-password");
    format!(
        r#"      <div class="notice" id="passkeys-notice" role="alert" aria-live="assertive"></div>
      <table id="passkeys">
        <thead><tr><th scope="col">{name}</th><th scope="col">{created}</th><th scope="col">{last}</th><th scope="col">{actions}</th></tr></thead>
        <tbody></tbody>
      </table>
      <div id="passkey-remove" hidden>
        <p id="passkey-remove-intro">{remove_intro} <strong id="passkey-remove-name"></strong></p>
{remove_form}        <button type="button" id="passkey-remove-cancel" class="secondary">{cancel}</button>
      </div>
{add_form}"#,
        name = t("passkey_name"),
        created = t("passkey_created_at"),
        last = t("passkey_last_used"),
        actions = t("actions"),
        remove_intro = t("passkey_remove_intro"),
        remove_form = form(
            "passkey-remove-form",
            &password("passkey-remove-password"),
            t("passkey_remove_button")
        ),
        cancel = t("cancel"),
        add_form = form("passkey-form", &add_fields, t("passkey_add_button")),
    )
}

/// The account settings page. Signed out, its script sends the browser to `/signin` with
/// `return_to=/account/settings`.
#[utoipa::path(
    get,
    path = "/account/settings",
    tag = "pages",
    params(("lang" = Option<String>, Query, description = PARAM_LANG, pattern = "^(en|zh)$")),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 422, response = super::openapi::ValidationFailed),
    ),
)]
pub(super) async fn settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = parse_query(query.as_deref());
    let lang = page_lang(&params, &headers)?;
    let t = |key| text(key, lang);
    let account = format!(
        r#"      <p id="status" role="status">{loading}</p>
      <dl class="account">
        <dt>{email}</dt><dd id="account-email"></dd>
        <dt>{username}</dt><dd id="account-username"></dd>
      </dl>
      <div class="notice" id="resend-notice" role="alert" aria-live="assertive"></div>
      <button type="button" id="resend-verification" class="secondary">{resend}</button>
"#,
        loading = t("loading"),
        email = t("email"),
        username = t("username"),
        resend = t("resend_button"),
    );
    let password_fields = field(
        lang,
        Field {
            id: "current-password",
            name: "current_password",
            label: "current_password",
            kind: "password",
            autocomplete: "current-password",
            hint: None,
            extra: "",
        },
    ) + &field(
        lang,
        Field {
            id: "new-password",
            name: "new_password",
            label: "new_password",
            kind: "password",
            autocomplete: "new-password",
            hint: Some("password_hint"),
            extra: r#" minlength="8" maxlength="128""#,
        },
    );
    let email_fields = field(
        lang,
        Field {
            id: "new-email",
            name: "new_email",
            label: "new_email",
            kind: "email",
            autocomplete: "email",
            hint: None,
            extra: r#" maxlength="254""#,
        },
    ) + &field(
        lang,
        Field {
            id: "email-password",
            name: "current_password",
            label: "current_password",
            kind: "password",
            autocomplete: "current-password",
            hint: None,
            extra: "",
        },
    );
    let sessions = format!(
        r#"      <div class="notice" id="sessions-notice" role="alert" aria-live="assertive"></div>
      <table id="sessions">
        <thead><tr><th scope="col">{started}</th><th scope="col">{last}</th><th scope="col">{ip}</th><th scope="col">{agent}</th><th scope="col">{actions}</th></tr></thead>
        <tbody></tbody>
      </table>
"#,
        started = t("session_started"),
        last = t("session_last_used"),
        ip = t("session_ip"),
        agent = t("session_agent"),
        actions = t("actions"),
    );
    let mut scopes = String::new();
    for (scope, checked) in [
        ("profile:read", " checked"),
        ("agent:chat", ""),
        ("sessions:write", ""),
        ("keys:write", ""),
    ] {
        let _ = write!(
            scopes,
            r#"<label class="check"><input type="checkbox" name="scopes" value="{scope}"{checked}> <code>{scope}</code></label> "#
        );
    }
    let key_fields = field(
        lang,
        Field {
            id: "key-name",
            name: "name",
            label: "key_name",
            kind: "text",
            autocomplete: "off",
            hint: None,
            extra: r#" maxlength="100""#,
        },
    ) + &format!(
        "      <fieldset><legend>{}</legend>{scopes}</fieldset>\n",
        t("key_scopes")
    );
    let keys = format!(
        r#"{form}      <div id="new-key" role="status" hidden><p>{created}</p><p><code id="new-key-value"></code></p></div>
      <table id="api-keys">
        <thead><tr><th scope="col">{name}</th><th scope="col">{prefix}</th><th scope="col">{scopes}</th><th scope="col">{created_at}</th><th scope="col">{last}</th><th scope="col">{actions}</th></tr></thead>
        <tbody></tbody>
      </table>
"#,
        form = form("key-form", &key_fields, t("key_create_button")),
        created = t("key_created"),
        name = t("key_name"),
        prefix = t("key_prefix"),
        scopes = t("key_scopes"),
        created_at = t("key_created_at"),
        last = t("key_last_used"),
        actions = t("actions"),
    );
    let signout = format!(
        "      <button type=\"button\" id=\"signout\">{}</button>\n",
        t("signout_button")
    );
    let delete_fields = field(
        lang,
        Field {
            id: "delete-password",
            name: "password",
            label: "password",
            kind: "password",
            autocomplete: "current-password",
            hint: None,
            extra: "",
        },
    );
    let delete = format!(
        r#"{form}      <div id="delete-confirm" hidden>
        <p id="delete-confirm-text">{confirm}</p>
        <button type="button" id="delete-confirm-button" class="danger" aria-describedby="delete-confirm-text">{confirm_button}</button>
        <button type="button" id="delete-cancel" class="secondary">{cancel}</button>
      </div>
"#,
        form = form("delete-form", &delete_fields, t("delete_account_button")),
        confirm = t("delete_confirm"),
        confirm_button = t("delete_confirm_button"),
        cancel = t("cancel"),
    );
    let mfa = mfa_settings(lang);
    let passkeys = passkey_settings(lang);
    let body = [
        section("account", t("account"), None, &account),
        section(
            "password-section",
            t("change_password"),
            Some(t("change_password_hint")),
            &form("password-form", &password_fields, t("change_password_button")),
        ),
        section(
            "email-section",
            t("change_email"),
            Some(t("change_email_hint")),
            &form("email-form", &email_fields, t("change_email_button")),
        ),
        section("mfa-section", t("mfa_title"), Some(t("mfa_hint")), &mfa),
        section(
            "passkeys-section",
            t("passkeys_title"),
            Some(t("passkeys_hint")),
            &passkeys,
        ),
        section("sessions-section", t("sessions"), Some(t("sessions_hint")), &sessions),
        section("keys-section", t("api_keys"), Some(t("api_keys_hint")), &keys),
        section("signout-section", t("signout"), None, &signout),
        section(
            "delete-section",
            t("delete_account"),
            Some(t("delete_account_hint")),
            &delete,
        ),
    ]
    .concat();
    Ok(render(
        &state.config,
        Page {
            id: "settings",
            title: "settings_title",
            lang,
            path: "/account/settings",
            params: &params,
            data: vec![("signin", href("/signin", lang, &[("return_to", "/account/settings")]))],
            strings: &[
                "network_error",
                "this_session",
                "end_session",
                "session_ended",
                "never",
                "delete_key",
                "key_deleted",
                "no_keys",
                "signed_in_as",
                "mfa_on",
                "mfa_off",
                "recovery_codes_left",
                "mfa_enabled",
                "passkey_added",
                "passkey_removed",
                "passkey_remove",
                "passkey_failed",
                "passkeys_unsupported",
                "no_passkeys",
            ],
            body,
        },
    ))
}

/// The pages' script.
#[utoipa::path(
    get,
    path = "/pages/pages.js",
    tag = "pages",
    responses((status = 200, description = "The hosted pages' script.", body = String, content_type = "text/javascript")),
)]
pub(super) async fn script(State(state): State<AppState>) -> Response {
    asset(&state.config, "text/javascript; charset=utf-8", PAGES_JS.to_owned())
}

/// The pages' style sheet.
#[utoipa::path(
    get,
    path = "/pages/pages.css",
    tag = "pages",
    responses((status = 200, description = "The hosted pages' style sheet.", body = String, content_type = "text/css")),
)]
pub(super) async fn style(State(state): State<AppState>) -> Response {
    asset(&state.config, "text/css; charset=utf-8", PAGES_CSS.to_owned())
}

/// The brand colour as a style sheet (BRAND_COLOR, checked to be `#rgb` or `#rrggbb` at start).
#[utoipa::path(
    get,
    path = "/pages/theme.css",
    tag = "pages",
    responses((status = 200, description = "The brand colour as CSS custom properties.", body = String, content_type = "text/css")),
)]
pub(super) async fn theme(State(state): State<AppState>) -> Response {
    asset(&state.config, "text/css; charset=utf-8", theme_css(&state.config))
}

/// `:root { --brand: ... }` from the validated colour.
pub fn theme_css(config: &Config) -> String {
    format!(
        "/* BRAND_COLOR */\n:root {{ --brand: {color}; }}\n",
        color = config.brand_color
    )
}

fn asset(config: &Config, content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, policy_header(config)),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_script_keeps_no_token_in_web_storage_and_writes_no_markup() {
        for forbidden in [
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "innerHTML",
            "outerHTML",
            "eval(",
            "insertAdjacentHTML",
        ] {
            let uses = PAGES_JS
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .any(|line| line.contains(forbidden));
            assert!(!uses, "pages.js uses {forbidden}");
        }
        assert!(PAGES_JS.contains("'X-CSRF-Token'"));
    }

    #[test]
    fn the_policy_adds_only_the_logos_origin() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        assert!(content_security_policy(&config).contains("img-src 'self' data:;"));
        config.brand_logo = crate::config::pages::parse_logo("https://cdn.example.com/l.svg").ok();
        let policy = content_security_policy(&config);
        assert!(
            policy.contains("img-src 'self' data: https://cdn.example.com;"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe"));
    }
}
