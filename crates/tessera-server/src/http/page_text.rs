//! The hosted pages' words (C4), in English and Chinese, next to each other so neither falls
//! behind. The pages are rendered on the server in the chosen language; the few words their
//! script writes itself reach it as `data-*` attributes of a hidden element (see
//! `assets/pages/pages.js`), and the API's own messages come from [`super::i18n`] because the
//! script sends the page's language as `Accept-Language`.

use super::i18n::Lang;

/// The text for a key in a language. An unknown key is a programming error, caught by the
/// unit test below, and renders as `?`.
pub fn text(key: &str, lang: Lang) -> &'static str {
    let (en, zh) = match key {
        "skip" => ("Skip to content", "跳到主要内容"),
        "language" => ("Language", "语言"),
        "home" => ("Home", "首页"),
        "signin_title" => ("Sign in", "登录"),
        "signup_title" => ("Create an account", "创建账户"),
        "forgot_title" => ("Forgot your password?", "忘记密码？"),
        "reset_title" => ("Set a new password", "设置新密码"),
        "verify_title" => ("Verify your email address", "验证邮箱地址"),
        "settings_title" => ("Account settings", "账户设置"),
        "login" => ("Email or username", "邮箱或用户名"),
        "email" => ("Email", "邮箱"),
        "username" => ("Username", "用户名"),
        "username_hint" => (
            "3 to 32 letters, digits, dots, underscores or hyphens.",
            "3 到 32 个字母、数字、点、下划线或连字符。",
        ),
        "password" => ("Password", "密码"),
        "password_hint" => (
            "At least 8 characters; a phrase of a few words is best.",
            "至少 8 个字符；由几个单词组成的短语最好。",
        ),
        "new_password" => ("New password", "新密码"),
        "confirm_password" => ("New password, again", "再次输入新密码"),
        "current_password" => ("Current password", "当前密码"),
        "new_email" => ("New email address", "新邮箱地址"),
        "signin_button" => ("Sign in", "登录"),
        "signup_button" => ("Create account", "创建账户"),
        "forgot_button" => ("Send me a link", "发送链接"),
        "reset_button" => ("Set password", "设置密码"),
        "verify_button" => ("Verify my email address", "验证我的邮箱地址"),
        "forgot_link" => ("Forgot your password?", "忘记密码？"),
        "signup_link" => ("Create an account", "创建账户"),
        "signin_link" => ("Sign in", "登录"),
        "settings_link" => ("Account settings", "账户设置"),
        "new_link" => ("Ask for a new link", "重新获取链接"),
        "forgot_intro" => (
            "Enter your account's email address and we will mail you a link to set a new password.",
            "请输入账户的邮箱地址，我们会发送一个设置新密码的链接。",
        ),
        "reset_intro" => (
            "Choose a new password. Setting it signs you out everywhere.",
            "请选择新密码。设置后，所有设备上的会话都会退出登录。",
        ),
        "verify_intro" => (
            "Press the button to confirm this email address belongs to you.",
            "请按下按钮，确认此邮箱地址属于您。",
        ),
        "signup_done_required" => (
            "Account created. We mailed a link to {email}: open it to verify your address, then sign in.",
            "账户已创建。我们已向 {email} 发送了一个链接：请打开它验证邮箱地址，然后登录。",
        ),
        "signup_done_optional" => (
            "Account created. We mailed a link to {email} to verify your address. You can sign in now.",
            "账户已创建。我们已向 {email} 发送了验证邮箱地址的链接。您现在就可以登录。",
        ),
        "signup_done_off" => (
            "Account created. You can sign in now.",
            "账户已创建。您现在就可以登录。",
        ),
        "passwords_differ" => ("The two new passwords differ.", "两次输入的新密码不一致。"),
        "network_error" => (
            "The server could not be reached. Check your connection and try again.",
            "无法连接服务器。请检查网络连接后重试。",
        ),
        "signed_out" => ("You are signed out.", "您已退出登录。"),
        "loading" => ("Loading…", "加载中…"),
        "account" => ("Your account", "您的账户"),
        "resend_button" => ("Send a new verification link", "重新发送验证链接"),
        "change_password" => ("Change password", "修改密码"),
        "change_password_hint" => (
            "Your other sessions end; this one stays signed in.",
            "您的其他会话将结束，当前会话保持登录。",
        ),
        "change_password_button" => ("Change password", "修改密码"),
        "change_email" => ("Change email address", "更改邮箱地址"),
        "change_email_hint" => (
            "We mail a link to the new address; the change happens when it is opened.",
            "我们会向新地址发送链接；打开链接后才会更改。",
        ),
        "change_email_button" => ("Send confirmation link", "发送确认链接"),
        "sessions" => ("Sessions", "会话"),
        "sessions_hint" => (
            "Where your account is signed in. End any session you do not recognise.",
            "您的账户在这些地方登录。请结束任何您不认识的会话。",
        ),
        "session_started" => ("Signed in", "登录时间"),
        "session_last_used" => ("Last active", "最近活动"),
        "session_ip" => ("IP address", "IP 地址"),
        "session_agent" => ("Browser", "浏览器"),
        "actions" => ("Actions", "操作"),
        "this_session" => ("this session", "当前会话"),
        "end_session" => ("End", "结束"),
        "session_ended" => ("Session ended.", "会话已结束。"),
        "api_keys" => ("API keys", "API 密钥"),
        "api_keys_hint" => (
            "Keys let programs call the API as you: Authorization: Bearer tsk_…",
            "密钥让程序以您的身份调用 API：Authorization: Bearer tsk_…",
        ),
        "key_name" => ("Key name", "密钥名称"),
        "key_scopes" => ("Scopes", "权限范围"),
        "key_create_button" => ("Create key", "创建密钥"),
        "key_created" => (
            "Copy the key now: it is not shown again.",
            "请立即复制此密钥：它不会再次显示。",
        ),
        "key_prefix" => ("Starts with", "开头"),
        "key_created_at" => ("Created", "创建时间"),
        "key_last_used" => ("Last used", "最近使用"),
        "never" => ("never", "从未"),
        "delete_key" => ("Delete", "删除"),
        "key_deleted" => ("API key deleted.", "API 密钥已删除。"),
        "no_keys" => ("No API keys yet.", "还没有 API 密钥。"),
        "signout" => ("Sign out", "退出登录"),
        "signout_button" => ("Sign out", "退出登录"),
        "delete_account" => ("Delete account", "删除账户"),
        "delete_account_hint" => (
            "Deletes the account, its sessions and API keys for good. Enter your password to continue.",
            "永久删除账户及其会话和 API 密钥。请输入密码以继续。",
        ),
        "delete_account_button" => ("Delete account…", "删除账户…"),
        "delete_confirm" => (
            "This cannot be undone. Delete the account for good?",
            "此操作无法撤销。确定要永久删除账户吗？",
        ),
        "delete_confirm_button" => ("Yes, delete it for good", "是的，永久删除"),
        "cancel" => ("Cancel", "取消"),
        "signed_in_as" => ("Signed in as", "当前登录："),
        _ => ("?", "?"),
    };
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// Every key the pages use (checked by the unit test to have both languages).
#[cfg(test)]
const KEYS: &[&str] = &[
    "skip",
    "language",
    "home",
    "signin_title",
    "signup_title",
    "forgot_title",
    "reset_title",
    "verify_title",
    "settings_title",
    "login",
    "email",
    "username",
    "username_hint",
    "password",
    "password_hint",
    "new_password",
    "confirm_password",
    "current_password",
    "new_email",
    "signin_button",
    "signup_button",
    "forgot_button",
    "reset_button",
    "verify_button",
    "forgot_link",
    "signup_link",
    "signin_link",
    "settings_link",
    "new_link",
    "forgot_intro",
    "reset_intro",
    "verify_intro",
    "signup_done_required",
    "signup_done_optional",
    "signup_done_off",
    "passwords_differ",
    "network_error",
    "signed_out",
    "loading",
    "account",
    "resend_button",
    "change_password",
    "change_password_hint",
    "change_password_button",
    "change_email",
    "change_email_hint",
    "change_email_button",
    "sessions",
    "sessions_hint",
    "session_started",
    "session_last_used",
    "session_ip",
    "session_agent",
    "actions",
    "this_session",
    "end_session",
    "session_ended",
    "api_keys",
    "api_keys_hint",
    "key_name",
    "key_scopes",
    "key_create_button",
    "key_created",
    "key_prefix",
    "key_created_at",
    "key_last_used",
    "never",
    "delete_key",
    "key_deleted",
    "no_keys",
    "signout",
    "signout_button",
    "delete_account",
    "delete_account_hint",
    "delete_account_button",
    "delete_confirm",
    "delete_confirm_button",
    "cancel",
    "signed_in_as",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_english_and_chinese_text() {
        for key in KEYS {
            let (en, zh) = (text(key, Lang::En), text(key, Lang::Zh));
            assert_ne!(en, "?", "{key}");
            assert_ne!(en, zh, "{key} is not translated");
            assert!(
                zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{key}: {zh}"
            );
        }
    }
}
