//! The hosted pages' branding (C4): PRODUCT_NAME, BRAND_COLOR, BRAND_LOGO_URL.
//!
//! Each value is checked here, at start-up, so the pages can put it into HTML, CSS and the
//! Content-Security-Policy without further thought: the name is plain text (escaped where it is
//! written), the colour is `#rgb` or `#rrggbb` and nothing else (it goes into a style sheet), the
//! logo is an `https` URL in forward auth's strict form or a same-origin path (its origin goes
//! into `img-src`).

use tessera_core::gateway::{AbsoluteUrl, Domains, ReturnTarget, UrlScheme, return_target};

use super::{ConfigError, Reader, invalid, vars};

/// Longest product name, in characters.
pub const MAX_PRODUCT_NAME_CHARS: usize = 64;

/// The logo of the hosted pages (BRAND_LOGO_URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandLogo {
    /// The `src` of the `<img>`, as configured.
    pub src: String,
    /// `https://host[:port]` when the logo lives on another origin (added to `img-src`).
    pub origin: Option<String>,
}

/// PRODUCT_NAME: 1 to 64 characters, no control characters.
pub fn parse_product_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_PRODUCT_NAME_CHARS || name.chars().any(char::is_control) {
        return Err("must be 1 to 64 characters without control characters");
    }
    Ok(name.to_owned())
}

/// BRAND_COLOR: `#rgb` or `#rrggbb` (hex digits, any case), returned lower-cased.
pub fn parse_color(raw: &str) -> Result<String, &'static str> {
    let hex = raw.trim().strip_prefix('#').ok_or("must be #rgb or #rrggbb")?;
    if !matches!(hex.len(), 3 | 6) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be #rgb or #rrggbb");
    }
    Ok(format!("#{}", hex.to_ascii_lowercase()))
}

/// BRAND_LOGO_URL: an absolute `https` URL (strict: no userinfo, backslash or escaped host) or
/// a path on Tessera's own origin (one leading `/`, the return-URL rules).
pub fn parse_logo(raw: &str) -> Result<BrandLogo, &'static str> {
    const RULE: &str = "must be an https:// URL or a path starting with a single /";
    let raw = raw.trim();
    // Quotes and angle brackets have no business in a logo's address; refusing them keeps the
    // value inert even where it is not escaped.
    if raw.contains(['"', '\'', '<', '>', '`']) {
        return Err(RULE);
    }
    if raw.starts_with('/') {
        return match return_target(raw, &Domains::default()) {
            Some(ReturnTarget::Path(src)) => Ok(BrandLogo { src, origin: None }),
            _ => Err(RULE),
        };
    }
    let url = AbsoluteUrl::parse(raw).map_err(|_| RULE)?;
    if url.scheme != UrlScheme::Https {
        return Err(RULE);
    }
    Ok(BrandLogo {
        src: url.to_string(),
        origin: Some(url.origin()),
    })
}

/// The three branding values, read and checked.
pub(super) fn branding(r: &Reader<'_>) -> Result<(String, String, Option<BrandLogo>), ConfigError> {
    let name = parse_product_name(r.value(&vars::PRODUCT_NAME).unwrap_or_default())
        .map_err(|e| invalid(vars::PRODUCT_NAME.name, e))?;
    let color =
        parse_color(r.value(&vars::BRAND_COLOR).unwrap_or_default()).map_err(|e| invalid(vars::BRAND_COLOR.name, e))?;
    let logo = match r.get(&vars::BRAND_LOGO_URL) {
        None => None,
        Some(raw) => Some(parse_logo(raw).map_err(|e| invalid(vars::BRAND_LOGO_URL.name, e))?),
    };
    Ok((name, color, logo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_short_or_long_hex_only() {
        assert_eq!(parse_color("#1A2b3C").as_deref(), Ok("#1a2b3c"));
        assert_eq!(parse_color("#abc").as_deref(), Ok("#abc"));
        for bad in [
            "",
            "red",
            "#abcd",
            "#ggg",
            "123456",
            "#123456;}body{x:y",
            "#12345",
            "# 123",
        ] {
            assert!(parse_color(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logos_are_https_urls_or_same_origin_paths() {
        assert_eq!(
            parse_logo("https://cdn.example.com/logo.svg"),
            Ok(BrandLogo {
                src: "https://cdn.example.com/logo.svg".to_owned(),
                origin: Some("https://cdn.example.com".to_owned()),
            })
        );
        assert_eq!(parse_logo("/static/logo.png").map(|l| l.origin), Ok(None));
        for bad in [
            "http://cdn.example.com/logo.svg",
            "//evil.com/logo.svg",
            "/\\evil.com/logo.svg",
            "javascript:alert(1)",
            "data:image/svg+xml,<svg/>",
            "https://user@evil.com/logo.svg",
            "logo.svg",
            "https://cdn.example.com/a\"onerror=\"x",
        ] {
            assert!(parse_logo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn product_names_are_short_plain_text() {
        assert_eq!(parse_product_name("  Acme ID ").as_deref(), Ok("Acme ID"));
        assert!(parse_product_name("").is_err());
        assert!(parse_product_name("a\u{7}b").is_err());
        assert!(parse_product_name(&"x".repeat(65)).is_err());
    }
}
