//! The mails' words, in English and Chinese, as plain text and HTML. Every value put into the
//! HTML is escaped; links are only ever PUBLIC_URL plus a fixed path and a base64url token.

/// Which mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// A link that verifies the account's address.
    VerifyEmail,
    /// A link that confirms a new address (sent to the new address).
    ChangeEmail,
    /// A notice to the old address that the address was changed.
    EmailChanged,
    /// A link that sets a new password.
    ResetPassword,
}

impl MailKind {
    /// The metrics' and logs' name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::ChangeEmail => "change_email",
            MailKind::EmailChanged => "email_changed",
            MailKind::ResetPassword => "reset_password",
        }
    }
}

/// The language of a mail: the `Accept-Language` of the request that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailLang {
    /// English.
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// What a mail needs besides its kind and language.
pub struct Params<'a> {
    /// The product name (PRODUCT_NAME).
    pub product: &'a str,
    /// The link to follow, for the kinds that have one.
    pub link: Option<&'a str>,
    /// The new address, for [`MailKind::EmailChanged`].
    pub new_email: Option<&'a str>,
}

struct Words {
    subject: String,
    paragraphs: Vec<String>,
    button: Option<&'static str>,
    after: Vec<String>,
}

fn words(kind: MailKind, lang: MailLang, p: &Params<'_>) -> Words {
    let product = p.product;
    let new_email = p.new_email.unwrap_or_default();
    match (kind, lang) {
        (MailKind::VerifyEmail, MailLang::En) => Words {
            subject: format!("Verify your email address for {product}"),
            paragraphs: vec![format!(
                "Please confirm that this is the email address of your {product} account."
            )],
            button: Some("Verify email address"),
            after: vec![
                "The link works once, for 24 hours.".into(),
                "If you did not create an account, you can ignore this mail.".into(),
            ],
        },
        (MailKind::VerifyEmail, MailLang::Zh) => Words {
            subject: format!("验证您的 {product} 邮箱地址"),
            paragraphs: vec![format!("请确认这是您的 {product} 账户的邮箱地址。")],
            button: Some("验证邮箱地址"),
            after: vec![
                "此链接仅可使用一次，24 小时内有效。".into(),
                "如果您没有注册账户，请忽略此邮件。".into(),
            ],
        },
        (MailKind::ChangeEmail, MailLang::En) => Words {
            subject: format!("Confirm your new email address for {product}"),
            paragraphs: vec![format!(
                "Someone, hopefully you, asked to change the email address of a {product} account to this one."
            )],
            button: Some("Confirm new address"),
            after: vec![
                "The link works once, for 24 hours. Until it is followed, the account keeps its old address.".into(),
                "If this was not you, ignore this mail: nothing changes.".into(),
            ],
        },
        (MailKind::ChangeEmail, MailLang::Zh) => Words {
            subject: format!("确认您的 {product} 新邮箱地址"),
            paragraphs: vec![format!(
                "有人（希望是您本人）请求将某个 {product} 账户的邮箱地址改为此地址。"
            )],
            button: Some("确认新地址"),
            after: vec![
                "此链接仅可使用一次，24 小时内有效。在您确认之前，账户仍使用原邮箱地址。".into(),
                "如果这不是您本人的操作，请忽略此邮件，什么都不会改变。".into(),
            ],
        },
        (MailKind::EmailChanged, MailLang::En) => Words {
            subject: format!("Your {product} email address was changed"),
            paragraphs: vec![format!(
                "The email address of your {product} account was changed to {new_email}. Mail about the account now goes there."
            )],
            button: None,
            after: vec![
                "If you did not do this, someone else may have your password: reset it and contact your administrator."
                    .into(),
            ],
        },
        (MailKind::EmailChanged, MailLang::Zh) => Words {
            subject: format!("您的 {product} 邮箱地址已更改"),
            paragraphs: vec![format!(
                "您的 {product} 账户的邮箱地址已改为 {new_email}。今后有关此账户的邮件将发送到该地址。"
            )],
            button: None,
            after: vec!["如果这不是您本人的操作，可能有人知道了您的密码：请重置密码并联系管理员。".into()],
        },
        (MailKind::ResetPassword, MailLang::En) => Words {
            subject: format!("Reset your {product} password"),
            paragraphs: vec![format!(
                "Someone, hopefully you, asked to reset the password of the {product} account with this email address."
            )],
            button: Some("Choose a new password"),
            after: vec![
                "The link works once, for 30 minutes. Setting a new password signs out every session.".into(),
                "If this was not you, ignore this mail: your password stays as it is.".into(),
            ],
        },
        (MailKind::ResetPassword, MailLang::Zh) => Words {
            subject: format!("重置您的 {product} 密码"),
            paragraphs: vec![format!(
                "有人（希望是您本人）请求重置使用此邮箱地址的 {product} 账户的密码。"
            )],
            button: Some("设置新密码"),
            after: vec![
                "此链接仅可使用一次，30 分钟内有效。设置新密码后，所有会话都将退出登录。".into(),
                "如果这不是您本人的操作，请忽略此邮件，您的密码不会改变。".into(),
            ],
        },
    }
}

/// Renders a mail.
pub fn render(kind: MailKind, lang: MailLang, params: &Params<'_>) -> Content {
    let w = words(kind, lang, params);
    let mut text = String::new();
    let mut html =
        String::from("<!doctype html>\n<html><body style=\"font-family:sans-serif;line-height:1.5;max-width:36em\">\n");
    for paragraph in &w.paragraphs {
        text.push_str(paragraph);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>\n", escape(paragraph)));
    }
    if let (Some(button), Some(link)) = (w.button, params.link) {
        text.push_str(&format!("{button}:\n{link}\n\n"));
        html.push_str(&format!(
            "<p><a href=\"{href}\" style=\"display:inline-block;padding:0.6em 1.2em;background:#1f4fd1;color:#fff;text-decoration:none;border-radius:4px\">{label}</a></p>\n<p style=\"font-size:0.9em;color:#555\">{href}</p>\n",
            href = escape(link),
            label = escape(button),
        ));
    }
    for line in &w.after {
        text.push_str(line);
        text.push('\n');
        html.push_str(&format!(
            "<p style=\"font-size:0.9em;color:#555\">{}</p>\n",
            escape(line)
        ));
    }
    text.push_str(&format!("\n-- \n{}\n", params.product));
    html.push_str("</body></html>\n");
    Content {
        subject: w.subject,
        text,
        html,
    }
}

/// HTML-escapes text for element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [MailKind; 4] = [
        MailKind::VerifyEmail,
        MailKind::ChangeEmail,
        MailKind::EmailChanged,
        MailKind::ResetPassword,
    ];

    #[test]
    fn every_mail_exists_in_both_languages_with_its_link_in_text_and_html() {
        let link = "https://auth.example.com/password/reset?token=abc_DEF-123";
        for kind in KINDS {
            for lang in [MailLang::En, MailLang::Zh] {
                let has_link = kind != MailKind::EmailChanged;
                let content = render(
                    kind,
                    lang,
                    &Params {
                        product: "Acme",
                        link: has_link.then_some(link),
                        new_email: Some("new@example.com"),
                    },
                );
                assert!(content.subject.contains("Acme"), "{kind:?} {lang:?}");
                assert_eq!(content.text.contains(link), has_link, "{kind:?} {lang:?}");
                assert_eq!(content.html.contains(&format!("href=\"{link}\"")), has_link);
                let chinese = content.text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
                assert_eq!(chinese, lang == MailLang::Zh, "{kind:?} {lang:?}");
            }
        }
    }

    #[test]
    fn values_are_escaped_in_html() {
        let content = render(
            MailKind::EmailChanged,
            MailLang::En,
            &Params {
                product: "<b>Acme</b>",
                link: None,
                new_email: Some("\"x\"@example.com"),
            },
        );
        assert!(!content.html.contains("<b>Acme"));
        assert!(content.html.contains("&lt;b&gt;Acme&lt;/b&gt;"));
        assert!(content.html.contains("&quot;x&quot;@example.com"));
    }
}
