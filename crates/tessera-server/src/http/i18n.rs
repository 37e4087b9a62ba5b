//! Messages in English and Chinese (S5: Chinese when `Accept-Language` prefers zh).
//!
//! The language comes from the request's `Accept-Language` header: the tag with the highest
//! q-value wins, and anything whose primary subtag is `zh` selects Chinese.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// A response language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// English (default).
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// The language preferred by an `Accept-Language` header.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        let Some(value) = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::En;
        };
        let mut best = (0.0f32, Lang::En);
        for item in value.split(',').take(32) {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::Zh
            } else {
                Lang::En
            };
            if quality > best.0 {
                best = (quality, lang);
            }
        }
        best.1
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::from_headers(&parts.headers))
    }
}

/// The message for a key in a language. Keys are error codes or specific message keys.
pub fn message(key: &str, lang: Lang) -> &'static str {
    let (en, zh) = match key {
        "bad_request" => ("The request is malformed", "请求格式错误"),
        "malformed_json" => ("The request body is not valid JSON", "请求体不是有效的 JSON"),
        "malformed_form" => ("The request body is not a valid form", "请求体不是有效的表单"),
        "credentials_in_query" => (
            "Credentials must be sent in the request body, never in the URL",
            "凭据必须放在请求体中，不能放在 URL 中",
        ),
        "invalid_header" => ("A request header is malformed", "请求头格式错误"),
        "path_dot_segment" => (
            "The path must not contain '.' or '..' segments",
            "路径中不能包含 '.' 或 '..' 段",
        ),
        "not_authenticated" => ("Authentication required", "需要身份验证"),
        "invalid_token" => ("Invalid token", "无效的令牌"),
        "token_expired" => ("Token has expired", "令牌已过期"),
        "invalid_refresh_token" => ("Invalid refresh token", "无效的刷新令牌"),
        "refresh_token_expired" => ("Refresh token has expired", "刷新令牌已过期"),
        "cross_site_request" => (
            "Cross-site request refused: sign in from this site",
            "已拒绝跨站请求：请在本站登录",
        ),
        "invalid_credentials" => ("Invalid email, username or password", "邮箱、用户名或密码错误"),
        "account_disabled" => ("This account is disabled", "该账户已被禁用"),
        "csrf_failed" => ("CSRF token missing or invalid", "CSRF 令牌缺失或无效"),
        "insufficient_scope" => (
            "The credential does not grant the scope this request needs",
            "该凭据未授予此请求所需的权限范围",
        ),
        "forbidden" => ("Access to this resource is not allowed", "不允许访问此资源"),
        "missing_role" => (
            "This resource requires a role the caller does not have; see details.role",
            "访问此资源需要调用者不具备的角色，请参阅 details.role",
        ),
        "untrusted_proxy" => (
            "Forward auth answers trusted proxies only (TRUSTED_PROXIES)",
            "前置认证只响应受信任的代理（TRUSTED_PROXIES）",
        ),
        "invalid_forwarded_request" => (
            "The forwarded request headers are missing or malformed",
            "转发的原始请求头缺失或格式错误",
        ),
        "invalid_mfa_token" => (
            "This sign-in has expired or was used up: sign in with your password again",
            "此次登录已过期或已用尽尝试次数：请重新使用密码登录",
        ),
        "invalid_mfa_code" => (
            "The code is not correct or was used already; see details.attempts_left",
            "验证码不正确或已被使用，请参阅 details.attempts_left",
        ),
        "mfa_already_enrolled" => (
            "An authenticator app is set up already: remove it before setting up another",
            "已设置身份验证器应用：请先移除后再设置新的",
        ),
        "mfa_not_enrolled" => (
            "No authenticator app is set up (or waiting for its first code) on this account",
            "此账户未设置身份验证器应用（或未在等待首个验证码）",
        ),
        "mfa_required" => (
            "Password accepted: enter the code from your authenticator app or a recovery code",
            "密码正确：请输入身份验证器应用中的验证码或一个恢复码",
        ),
        "mfa_removed" => ("Two-factor authentication removed", "已移除两步验证"),
        "not_found" => ("Not found", "资源不存在"),
        "method_not_allowed" => ("Method not allowed", "不允许的请求方法"),
        "request_timeout" => ("The request took too long", "请求超时"),
        "conflict" => ("The resource already exists", "资源已存在"),
        "conflict_email" => ("This email is already registered", "该邮箱已被注册"),
        "conflict_username" => ("This username is already taken", "该用户名已被占用"),
        "payload_too_large" => ("The request body is too large", "请求体过大"),
        "unsupported_media_type" => (
            "Unsupported content type: send application/json",
            "不支持的内容类型：请使用 application/json",
        ),
        "validation_error" => ("The request has invalid fields", "请求参数验证失败"),
        "rate_limited" => ("Too many requests, please try again later", "请求过于频繁，请稍后再试"),
        "quota_exceeded" => (
            "This API key has used up its quota; see details.reset_at",
            "该 API 密钥的配额已用完，请参阅 details.reset_at",
        ),
        "service_unavailable" => (
            "Service temporarily unavailable, please retry",
            "服务暂时不可用，请稍后重试",
        ),
        "session_required" => (
            "Sign in with your password to do this; an API key cannot",
            "此操作需要使用密码登录的会话，API 密钥不能执行",
        ),
        "password_changed" => ("Password changed", "密码已修改"),
        "email_not_verified" => (
            "Verify your email address first: follow the link we mailed you, or ask for a new one",
            "请先验证邮箱地址：打开我们发送给您的邮件中的链接，或重新发送验证邮件",
        ),
        "invalid_passkey_ceremony" => (
            "This passkey request has expired or was used already: start again",
            "此通行密钥请求已过期或已被使用：请重新开始",
        ),
        "passkey_refused" => ("The passkey was not accepted", "通行密钥未被接受"),
        "invalid_link" => (
            "This link is not valid: it was used already, has expired, or a newer one was sent",
            "此链接无效：它已被使用、已过期，或已发送了更新的链接",
        ),
        "mail_sent_if_account" => (
            "If an account uses this address, a mail with a link is on its way",
            "如果有账户使用此邮箱地址，带链接的邮件正在发送中",
        ),
        "password_reset" => (
            "Password set; every session was signed out",
            "密码已设置，所有会话均已退出登录",
        ),
        "email_verified" => ("Email address verified", "邮箱地址已验证"),
        "email_changed" => ("Email address changed", "邮箱地址已更改"),
        "email_change_sent" => (
            "A link to confirm the new address is on its way to it; the account keeps its address until then",
            "确认新地址的链接已发送到该地址；在确认之前，账户仍使用原地址",
        ),
        "verification_sent" => ("A new verification link is on its way", "新的验证链接正在发送中"),
        "already_verified" => ("This email address is verified already", "此邮箱地址已验证"),
        "bad_gateway" => (
            "The upstream service could not be reached, please retry",
            "无法连接上游服务，请稍后重试",
        ),
        "gateway_timeout" => ("The upstream service did not answer in time", "上游服务响应超时"),
        "storage_unavailable" => (
            "The server cannot store data right now, please retry later",
            "服务器暂时无法存储数据，请稍后重试",
        ),
        "login_success" => ("Login successful", "登录成功"),
        "refresh_success" => ("Token refreshed", "令牌已刷新"),
        "logout_success" => ("Logged out", "已退出登录"),
        "logout_all_success" => ("Logged out of all sessions", "已退出所有会话"),
        _ => ("Internal server error", "服务器内部错误"),
    };
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// A field problem's message in a language; unknown codes keep the English text given.
pub fn field_message(code: &str, english: &str, lang: Lang) -> String {
    if lang == Lang::En {
        return english.to_owned();
    }
    let zh = match code {
        "missing" => "缺少此字段",
        "invalid_type" => "字段类型错误",
        "invalid_email" => "邮箱格式无效",
        "invalid_username" => "用户名须为 3 到 32 个字母、数字、点、下划线或连字符",
        "password_too_short" => "密码长度不足 8 个字符",
        "password_too_long" => "密码不能超过 128 个字符",
        "password_too_common" => "密码过于常见",
        "password_equals_email" => "密码不能与邮箱相同",
        "password_equals_username" => "密码不能与用户名相同",
        "empty" => "不能为空",
        "too_long" => "内容过长",
        "incorrect_password" => "密码不正确",
        "incorrect_code" => "验证码不正确",
        "invalid_format" => "格式无效",
        "conflicting_fields" => "请只提供 code 或 recovery_code 其中之一",
        _ => return english.to_owned(),
    };
    zh.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn lang(value: &str) -> Lang {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(value).unwrap(),
        );
        Lang::from_headers(&headers)
    }

    #[test]
    fn highest_quality_language_wins() {
        assert_eq!(lang("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(lang("en-US,en;q=0.9,zh;q=0.8"), Lang::En);
        assert_eq!(lang("fr;q=0.9, zh-TW;q=0.95"), Lang::Zh);
        assert_eq!(lang("zh"), Lang::Zh);
        assert_eq!(lang("de"), Lang::En);
        assert_eq!(lang("zhx"), Lang::En);
        assert_eq!(lang(";;;,,q=abc"), Lang::En);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
    }

    #[test]
    fn every_error_code_has_its_own_message_in_both_languages() {
        use crate::http::error::ErrorCode;
        let fallback = (message("", Lang::En), message("", Lang::Zh));
        for code in ErrorCode::ALL {
            let own = (message(code.as_str(), Lang::En), message(code.as_str(), Lang::Zh));
            if code != ErrorCode::InternalServerError {
                assert_ne!(own, fallback, "{} falls back to the internal error text", code.as_str());
            }
            assert!(!own.0.is_empty() && !own.1.is_empty());
        }
    }
}
