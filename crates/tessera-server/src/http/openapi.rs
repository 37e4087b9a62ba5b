//! The OpenAPI 3.1 document (`GET /openapi.json`) and the interactive API page (`/docs`, B12).
//!
//! Each handler carries its own `#[utoipa::path]` annotation, next to its code; this module
//! gathers them, adds what every operation shares (the unified error responses of the
//! middleware, the security schemes) and serves the document with Swagger UI. The UI's files
//! are embedded in the binary at build time (`utoipa-swagger-ui` feature `vendored`): the page
//! works with no network, and its Content-Security-Policy allows nothing but this origin.
//!
//! The test `tests/api/openapi.rs` checks the document against the routes in `src/http/*.rs`
//! both ways, so a route without documentation fails CI.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, RefOr, Response, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::AppState;
use super::error::{AppError, ErrorCode};

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where the interactive API page is served (`/docs` redirects to `/docs/`).
pub const DOCS_PATH: &str = "/docs";

/// The docs page's Content-Security-Policy: scripts, styles, images and API calls from this
/// origin only. Swagger UI sets inline styles and uses `data:` images, nothing else.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The files of Swagger UI's distribution the page loads (`index.html` and what it links to);
/// the rest of the distribution is not served (and is trimmed out of the binary, see
/// `.cargo/config.toml`). Not the OAuth2 redirect page: Tessera is no OAuth2 provider, and its
/// inline script would not run under [`DOCS_CSP`] anyway.
pub const SHIPPED_FILES: [&str; 8] = [
    "index.html",
    "index.css",
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-initializer.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
];

/// The OpenAPI document of every route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "JWT authentication server. Every error has the unified shape \
            `{\"error\": code, \"message\": text, \"details\": object|null}`; messages are in \
            English, or in Chinese when `Accept-Language` prefers `zh`. Protected routes take the \
            access token from `Authorization: Bearer` or from the `access_token` cookie; a \
            cookie-authenticated POST/DELETE must also send `X-CSRF-Token` (the `csrf_token` \
            from login).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::account::register,
        super::account::login,
        super::account::login_mfa,
        super::account::refresh,
        super::account::refresh_csrf,
        super::account::logout,
        super::account::logout_all,
        super::settings::change_password,
        super::settings::delete_account,
        super::mfa::status,
        super::mfa::start_totp,
        super::mfa::confirm_totp,
        super::mfa::remove_totp,
        super::mfa::new_recovery_codes,
        super::passkeys::list,
        super::passkeys::register_start,
        super::passkeys::register_finish,
        super::passkeys::remove,
        super::passkeys::login_start,
        super::passkeys::login_finish,
        super::email::forgot_password,
        super::email::reset_password,
        super::email::verify_email,
        super::email::resend_verification,
        super::email::change_email,
        super::sessions::list_sessions,
        super::sessions::delete_session,
        super::profile::profile,
        super::profile::profile_full,
        super::agent::chat,
        super::api_keys::create_key,
        super::api_keys::list_keys,
        super::api_keys::rotate_key,
        super::api_keys::revoke_key,
        super::introspect::introspect,
        super::health::healthz,
        super::health::readyz,
        super::jwks::jwks,
        metrics_doc,
        openapi_doc,
        docs_redirect_doc,
        docs_page_doc,
        docs_asset_doc,
        super::demo::page,
        super::demo::script,
        super::demo::style,
        super::demo::icon,
        super::pages::signin,
        super::pages::signup,
        super::pages::forgot,
        super::pages::reset,
        super::pages::verify,
        super::pages::settings,
        super::pages::script,
        super::pages::style,
        super::pages::theme,
    ),
    components(schemas(ErrorBody, ErrorCode), responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        RequestTimeout,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        RateLimited,
        InternalError,
        Unavailable,
    )),
    modifiers(&SecuritySchemes, &SharedResponses, &OptionalBodies, &LoginNamesAccount),
    tags(
        (name = "auth", description = "Registration, login, token refresh and logout"),
        (name = "sessions", description = "A user's own sessions"),
        (name = "account", description = "The signed-in user's account settings"),
        (name = "api", description = "The protected API"),
        (name = "api-keys", description = "The caller's API keys (`Authorization: Bearer tsk_...`)"),
        (name = "operations", description = "Health, readiness, metrics and public keys"),
        (name = "docs", description = "This document and the API page"),
        (name = "demo", description = "The browser demo"),
        (name = "pages", description = "The hosted pages (sign-in, sign-up, password, email, settings): HTML for browsers"),
    )
)]
pub struct ApiDoc;

/// The document and the API page.
pub fn router() -> Router<AppState> {
    let config = Config::new([OPENAPI_PATH])
        // "none": the UI never sends the document to swagger.io's online validator.
        .validator_url("none")
        .try_it_out_enabled(true)
        // Lets "Try it out" send the same-origin cookies (the cookie + CSRF flow).
        .with_credentials(true);
    let ui = SwaggerUi::new(DOCS_PATH)
        .url(OPENAPI_PATH, ApiDoc::openapi())
        .config(config);
    Router::from(ui)
        .route_layer(middleware::from_fn(only_shipped_files))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        ))
}

/// 404 for any file under `/docs/` but the page's own ([`SHIPPED_FILES`]).
async fn only_shipped_files(request: Request, next: Next) -> HttpResponse {
    let path = request.uri().path();
    let file = path.strip_prefix(DOCS_PATH).and_then(|rest| rest.strip_prefix('/'));
    match file {
        Some(file) if !file.is_empty() && !SHIPPED_FILES.contains(&file) => {
            AppError::Code(ErrorCode::NotFound).into_response()
        }
        _ => next.run(request).await,
    }
}

/// The error body every error response has (S5).
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only: errors are rendered by `RenderedError::body`.
pub struct ErrorBody {
    /// The stable error code.
    error: ErrorCode,
    /// A human-readable message in the client's language.
    message: String,
    /// More about the error: `{"errors": [{"field","code","message"}]}` for
    /// `validation_error`, `{"field"}` for `conflict`, `{"limit","retry_after"}` for
    /// `rate_limited`, `{"scope"}` for `insufficient_scope`; `null` otherwise (always for 5xx).
    #[schema(value_type = Option<Object>, required = true)]
    details: Option<serde_json::Value>,
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
            .description(Some("The `error` code of the unified error body."))
            .into()
    }
}

impl ToSchema for ErrorCode {}

fn string_header(description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
    header.description = Some(description.to_owned());
    header
}

fn integer_header(description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)));
    header.description = Some(description.to_owned());
    header
}

/// The `X-RateLimit-*` headers of a rate-limited route's responses.
fn with_rate_limit_headers(builder: ResponseBuilder) -> ResponseBuilder {
    builder
        .header("X-RateLimit-Limit", integer_header("Requests allowed in the window."))
        .header("X-RateLimit-Remaining", integer_header("Requests left in the window."))
        .header(
            "X-RateLimit-Reset",
            integer_header("Unix time (seconds) when the window is full again."),
        )
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// Declares a reusable error response (`#/components/responses/<Name>`).
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $build:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let build: fn() -> ResponseBuilder = $build;
                (stringify!($name), build().build().into())
            }
        }
    )*};
}

error_responses! {
    /// 400.
    BadRequest => || error_response(
        "`bad_request`: malformed JSON or form, or credentials in the query string.",
    );
    /// 401 with `WWW-Authenticate`.
    Unauthorized => || error_response(
        "`not_authenticated` (no token), `invalid_token` or `token_expired` (a token was \
         presented), `invalid_credentials` (login).",
    )
    .header(
        "WWW-Authenticate",
        string_header("`Bearer realm=\"tessera\"`, with RFC 6750 `error` and `error_description` when a token was presented."),
    );
    /// 403.
    Forbidden => || error_response(
        "`csrf_failed`: cookie-authenticated unsafe request without a matching `X-CSRF-Token`; \
         `account_disabled`; or `insufficient_scope`: the credential does not grant the scope the \
         route needs (`details.scope` names it).",
    )
    .header(
        "WWW-Authenticate",
        string_header("With `insufficient_scope`: `Bearer realm=\"tessera\", error=\"insufficient_scope\", scope=\"...\"` (RFC 6750)."),
    );
    /// 404.
    NotFound => || error_response("`not_found`.");
    /// 408.
    RequestTimeout => || error_response("`request_timeout`: the request took longer than REQUEST_TIMEOUT.");
    /// 409.
    Conflict => || error_response("`conflict`: `details.field` names what already exists.");
    /// 413.
    PayloadTooLarge => || error_response("`payload_too_large`: the body is over MAX_BODY_BYTES.");
    /// 415.
    UnsupportedMediaType => || error_response(
        "`unsupported_media_type`: the body is not of an accepted content type.",
    );
    /// 422.
    ValidationFailed => || error_response(
        "`validation_error`: `details.errors` lists the field problems.",
    );
    /// 429 with `Retry-After` and `X-RateLimit-*`.
    RateLimited => || with_rate_limit_headers(error_response(
        "`rate_limited`: `details` has the `limit` and `retry_after` seconds. \
         `quota_exceeded` (API keys): `details` has the `quota`, `reset_at` (RFC 3339, the end of \
         its current window) and `retry_after` seconds.",
    ))
    .header("Retry-After", integer_header("Seconds after which a retry may succeed."));
    /// 500.
    InternalError => || error_response("`internal_server_error`: `details` is always null.");
    /// 503 with `Retry-After`.
    Unavailable => || error_response(
        "`service_unavailable`: a dependency is down, or the server sheds load. \
         `storage_unavailable`: the database cannot store data (disk full, read-only, I/O error); \
         nothing was stored.",
    )
    .header("Retry-After", integer_header("Seconds after which a retry may succeed."));
}

/// The security schemes: the access token as a Bearer header or as the cookie, and the CSRF
/// header a cookie-authenticated unsafe request needs with it.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The access token from /login or /refresh."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "access_token",
                "The HttpOnly access-token cookie set by /login and /refresh.",
            ))),
        );
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "refresh_token",
                "The HttpOnly refresh-token cookie (Path=/refresh) set by /login and /refresh.",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The `csrf_token` from /login or /refresh; required with the cookie on POST and DELETE.",
            ))),
        );
    }
}

/// Adds the responses the middleware can give on any route: 400 for credentials in the query
/// string, 408 from the timeout, 413 from the body limit, 500 from the panic catcher.
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let shared: [(&str, &str); 4] = [
            ("400", "BadRequest"),
            ("408", "RequestTimeout"),
            ("413", "PayloadTooLarge"),
            ("500", "InternalError"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_shared(operation, &shared);
            }
        }
    }
}

fn add_shared(operation: &mut Operation, shared: &[(&str, &str)]) {
    for (status, name) in shared {
        operation
            .responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::Ref(utoipa::openapi::Ref::from_response_name(*name)));
    }
}

// Documented here: the handler, `http::metrics::metrics`, belongs to the observability code.
/// Prometheus metrics (S10).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format.", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
    )
)]
#[allow(dead_code)] // The annotation's carrier: the handler is `http::metrics::metrics`.
fn metrics_doc() {}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)),
)]
#[allow(dead_code)] // The annotation's carrier: `utoipa-swagger-ui` serves the route.
fn openapi_doc() {}

/// The API page, moved to `/docs/`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    responses((status = 303, description = "Redirect to `/docs/`.",
        headers(("Location" = String, description = "`/docs/`")))),
)]
#[allow(dead_code)] // The annotation's carrier: `utoipa-swagger-ui` serves the route.
fn docs_redirect_doc() {}

/// The interactive API page (Swagger UI).
///
/// Its scripts and styles are served under `/docs/`, from the server itself: no network needed.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "docs",
    responses((status = 200, description = "The Swagger UI page.", body = String, content_type = "text/html")),
)]
#[allow(dead_code)] // The annotation's carrier: `utoipa-swagger-ui` serves the route.
fn docs_page_doc() {}

/// The API page's scripts, styles and icons.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    params(("file" = String, Path, description = "A file of the page (`SHIPPED_FILES`), e.g. `swagger-ui-bundle.js`.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "text/html"),
            (Vec<u8> = "image/png"),
        )),
        (status = 404, response = NotFound),
    ),
)]
#[allow(dead_code)] // The annotation's carrier: `utoipa-swagger-ui` serves the route.
fn docs_asset_doc() {}

/// Request bodies that may be left out: `POST /refresh` with no body uses the refresh cookie;
/// `POST /email/verify/resend` signed in needs none. (`#[utoipa::path]` marks every declared
/// body required.)
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for path in ["/refresh", "/email/verify/resend"] {
            let body = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|operation| operation.request_body.as_mut());
            if let Some(body) = body {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

/// `POST /login` needs `email` or `username` (a non-blank one): `anyOf` the two, which the
/// derive cannot express.
struct LoginNamesAccount;

impl Modify for LoginNamesAccount {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        let Some(login) = schemas.remove("LoginRequest") else {
            return;
        };
        let names = |field: &str| {
            ObjectBuilder::new()
                .property(
                    field,
                    ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"\S")),
                )
                .required(field)
        };
        let either = AnyOfBuilder::new().item(names("email")).item(names("username"));
        let schema = AllOfBuilder::new().item(login).item(either);
        schemas.insert("LoginRequest".to_owned(), schema.into());
    }
}
