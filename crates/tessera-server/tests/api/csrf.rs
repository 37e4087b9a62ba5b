//! CSRF (S2): cookie-authenticated unsafe requests need the session's X-CSRF-Token; Bearer
//! requests and safe methods do not.

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::json;

use crate::helpers::{Login, TestApp, assert_error, spawn_app};

/// One session under test (`target`, authenticated by cookie) and another session of the same
/// user (`other`), whose CSRF token must not be accepted for `target`.
struct Setup {
    target: Login,
    other: Login,
    other_sid: String,
}

async fn setup(app: &TestApp) -> Setup {
    let (user, target) = app.new_session().await;
    let other = app.login_user(&user).await;
    let other_sid = app.session_id(&other.access).await;
    assert_ne!(target.csrf, other.csrf);
    Setup {
        target,
        other,
        other_sid,
    }
}

#[derive(Clone, Copy, Debug)]
enum Route {
    Chat,
    Logout,
    LogoutAll,
    DeleteSession,
    RefreshByCookie,
}

impl Route {
    fn request(self, app: &TestApp, setup: &Setup) -> RequestBuilder {
        match self {
            Route::Chat => app
                .post("/agent/chat")
                .header("cookie", setup.target.access_cookie())
                .json(&json!({ "message": "hi" })),
            Route::Logout => app.post("/logout").header("cookie", setup.target.access_cookie()),
            Route::LogoutAll => app.post("/logout/all").header("cookie", setup.target.access_cookie()),
            Route::DeleteSession => app
                .delete(&format!("/sessions/{}", setup.other_sid))
                .header("cookie", setup.target.access_cookie()),
            Route::RefreshByCookie => app.post("/refresh").header("cookie", setup.target.refresh_cookie()),
        }
    }

    fn success(self) -> StatusCode {
        match self {
            Route::DeleteSession => StatusCode::NO_CONTENT,
            _ => StatusCode::OK,
        }
    }
}

async fn send(request: RequestBuilder, csrf: Option<&str>) -> Response {
    let request = match csrf {
        Some(token) => request.header("x-csrf-token", token),
        None => request,
    };
    request.send().await.unwrap()
}

async fn check_route(route: Route) {
    let app = spawn_app().await;
    let setup = setup(&app).await;
    let wrong = "A".repeat(setup.target.csrf.len());
    for (label, csrf) in [
        ("no header", None),
        ("empty header", Some("")),
        ("wrong header", Some(wrong.as_str())),
        ("another session's header", Some(setup.other.csrf.as_str())),
    ] {
        let response = send(route.request(&app, &setup), csrf).await;
        let (headers, body) = assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
        assert!(headers.get("set-cookie").is_none(), "{route:?} {label}");
        assert_eq!(body["message"], "CSRF token missing or invalid", "{route:?} {label}");
    }
    // Nothing happened: both sessions are alive, the refresh token is still current.
    assert_eq!(
        app.profile(&setup.target.access).await.status(),
        StatusCode::OK,
        "{route:?}"
    );
    assert_eq!(
        app.profile(&setup.other.access).await.status(),
        StatusCode::OK,
        "{route:?}"
    );
    assert_eq!(app.sessions(&setup.target.access).await.len(), 2, "{route:?}");

    let response = send(route.request(&app, &setup), Some(&setup.target.csrf)).await;
    assert_eq!(response.status(), route.success(), "{route:?} with the right header");
    if let Route::RefreshByCookie = route {
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["refresh_token"]
                .as_str()
                .is_some_and(|t| t != setup.target.refresh)
        );
    }
}

#[tokio::test]
async fn chat_by_cookie_needs_the_sessions_csrf_header() {
    check_route(Route::Chat).await;
}

#[tokio::test]
async fn logout_by_cookie_needs_the_sessions_csrf_header() {
    check_route(Route::Logout).await;
}

#[tokio::test]
async fn logout_all_by_cookie_needs_the_sessions_csrf_header() {
    check_route(Route::LogoutAll).await;
}

#[tokio::test]
async fn deleting_a_session_by_cookie_needs_the_sessions_csrf_header() {
    check_route(Route::DeleteSession).await;
}

#[tokio::test]
async fn refreshing_by_cookie_needs_the_sessions_csrf_header() {
    check_route(Route::RefreshByCookie).await;
}

#[tokio::test]
async fn csrf_failures_are_in_chinese_under_accept_language_zh() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let response = app
        .post("/logout")
        .header("cookie", login.access_cookie())
        .header("accept-language", "zh")
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    assert_eq!(body["message"], "CSRF 令牌缺失或无效");
}

#[tokio::test]
async fn bearer_requests_need_no_csrf_header() {
    let app = spawn_app().await;
    let setup = setup(&app).await;
    let token = &setup.target.access;

    let response = app
        .post("/agent/chat")
        .bearer_auth(token)
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .delete(&format!("/sessions/{}", setup.other_sid))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app.post("/logout/all").bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (_, login) = app.new_session().await;
    assert_eq!(
        app.refresh(&login.refresh).await.status(),
        StatusCode::OK,
        "refresh by body needs no CSRF header"
    );
    let response = app.post("/logout").bearer_auth(&login.access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A Bearer token wins over a cookie: no CSRF needed even when a cookie rides along.
    let (_, both) = app.new_session().await;
    let response = app
        .post("/agent/chat")
        .bearer_auth(&both.access)
        .header("cookie", both.access_cookie())
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn safe_requests_by_cookie_need_no_csrf_header() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    for path in ["/profile", "/profile/full", "/sessions"] {
        let response = app
            .get(path)
            .header("cookie", login.access_cookie())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    }
    // Other cookies around the access cookie are fine.
    let response = app
        .get("/profile")
        .header("cookie", format!("theme=dark; {}; lang=en", login.access_cookie()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
