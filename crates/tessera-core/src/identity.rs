//! Email addresses and usernames in one canonical spelling, so that look-alikes are either the
//! same account or refused (issue 13, finding 6).
//!
//! Lower-casing alone lets `ada@example.com`, `ａｄａ@example.com` (fullwidth), `аda@example.com`
//! (Cyrillic `а`) and `a\u{200D}da@example.com` (zero-width joiner) be four accounts that look
//! alike on screen. [`Email::parse`] and [`Username::parse`] decide once, without I/O, what an
//! identifier is; the normalised form is what gets stored and compared.
//!
//! # Email policy
//!
//! 1. Surrounding whitespace is trimmed.
//! 2. Control characters (`Cc`) and invisible ones (Unicode `Default_Ignorable_Code_Point`, as
//!    classified by UTS #39 in `unicode-security`: zero-width joiner and non-joiner, bidi
//!    controls and overrides, soft hyphen, byte-order mark, variation selectors, ...) anywhere
//!    are refused, before normalisation can hide them.
//! 3. The text is normalised with NFKC, lower-cased with full Unicode case mapping (the PRECIS
//!    case-mapping rule of RFC 8264, `toLowerCase`), and NFKC again. Fullwidth and other
//!    compatibility forms fold into their plain letters; a decomposed `e\u{301}` and a
//!    precomposed `é` are the same. The result is checked to be stable, so parsing is idempotent.
//! 4. The syntax rules of registration stay: one `@`, a non-empty local part of at most 64
//!    bytes, a dotted domain not starting or ending with a dot, no whitespace, at most 254 bytes.
//! 5. Local part: ASCII characters follow the old rule (any printable ASCII but `@`); every
//!    non-ASCII character must be allowed in identifiers by the UTS #39 General Security Profile
//!    (which refuses symbols, emoji and obsolete or limited-use scripts). The letters must meet
//!    UTS #39's "Highly Restrictive" level: one script (a wholly Cyrillic or Greek local part is a
//!    legitimate address), or Latin with Han and Japanese kana, Han and Bopomofo, or Han and
//!    Hangul. Latin mixed with Cyrillic or Greek (`аda`, and also `адa`) is refused: those are the
//!    classic look-alike mixes. Whole-script look-alikes (an all-Cyrillic `аре` beside `ape`) pass
//!    this check; telling them apart needs a comparison against the existing accounts (UTS #39
//!    skeletons), which belongs to the store.
//! 6. Domain: converted with IDNA (UTS #46, the `idna` crate already in the dependency tree, in
//!    its strict mode: the STD3 host-name rules of RFC 5321, hyphen and DNS length checks) to
//!    its lower-case ASCII form, Punycode for internationalised labels. `bücher.example` and
//!    `xn--bcher-kva.example` are therefore one domain, and the stored form is always ASCII.
//!    IP literals (`[192.0.2.1]`) and host names with `_` are refused.
//!
//! # Username policy
//!
//! Usernames stay ASCII `[A-Za-z0-9._-]{3,32}`, checked after trimming and NFKC (so fullwidth
//! `ａｌｉｃｅ` is `alice`); invisible and control characters are refused with their own
//! error. A [`Username`] keeps the case it was typed in for display and compares
//! case-insensitively through [`Username::normalized`].

use std::fmt;
use std::hash::{Hash, Hasher};

use unicode_normalization::UnicodeNormalization;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, RestrictionLevel, RestrictionLevelDetection};

/// Longest email address accepted, in bytes of the normalised form (RFC 5321 path limit less
/// the angle brackets).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest local part accepted, in bytes of the normalised form (RFC 5321 section 4.5.3.1.1).
pub const MAX_LOCAL_PART_BYTES: usize = 64;
/// Shortest username accepted, in characters.
pub const MIN_USERNAME_LEN: usize = 3;
/// Longest username accepted, in characters.
pub const MAX_USERNAME_LEN: usize = 32;

/// Why an email address or a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Nothing left after trimming.
    #[error("must not be empty")]
    Empty,
    /// A control character (`Cc`), e.g. a newline or NUL.
    #[error("control character U+{:04X} is not allowed", *.0 as u32)]
    Control(char),
    /// An invisible character: zero-width joiner/non-joiner, bidi control, soft hyphen, ...
    #[error("invisible character U+{:04X} is not allowed", *.0 as u32)]
    Invisible(char),
    /// A non-ASCII character that UTS #39 does not allow in identifiers (symbol, emoji,
    /// obsolete or limited-use script).
    #[error("character U+{:04X} is not allowed in an address", *.0 as u32)]
    Disallowed(char),
    /// The local part mixes scripts beyond UTS #39's "Highly Restrictive" level (e.g. Latin and
    /// Cyrillic).
    #[error("the part before @ mixes scripts")]
    MixedScript,
    /// The address breaks a syntax rule; the text says which.
    #[error("not a valid email address: {0}")]
    Syntax(&'static str),
    /// The domain is not a valid (internationalised) host name.
    #[error("not a valid email domain")]
    Domain,
    /// The username is not 3 to 32 characters of letters, digits, `.`, `_` and `-`.
    #[error("username must be 3 to 32 characters of letters, digits, '.', '_' and '-'")]
    Username,
    /// A second round of normalisation would change the text again (no known input does this;
    /// it is refused rather than stored in a form that a second parse would change).
    #[error("the text does not normalise stably")]
    Unstable,
}

impl IdentityError {
    /// A stable machine-readable code for API error bodies and logs.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::Empty => "empty",
            IdentityError::Control(_) => "control_character",
            IdentityError::Invisible(_) => "invisible_character",
            IdentityError::Disallowed(_) => "disallowed_character",
            IdentityError::MixedScript => "mixed_script",
            IdentityError::Syntax(_) | IdentityError::Domain | IdentityError::Unstable => "invalid_email",
            IdentityError::Username => "invalid_username",
        }
    }
}

/// An email address in its canonical form: NFKC, lower-cased, domain in ASCII (Punycode).
///
/// Two addresses are the same account exactly when their canonical forms are equal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email {
    normalized: String,
    at: usize,
}

impl Email {
    /// Parses and normalises an email address; see the module documentation for the rules.
    pub fn parse(raw: &str) -> Result<Email, IdentityError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(IdentityError::Empty);
        }
        refuse_hidden(trimmed)?;
        let folded = stable(trimmed, fold_case)?;
        refuse_hidden(&folded)?;
        let (local, domain) = folded.split_once('@').ok_or(IdentityError::Syntax("no @"))?;
        if local.is_empty() {
            return Err(IdentityError::Syntax("nothing before @"));
        }
        if domain.contains('@') {
            return Err(IdentityError::Syntax("more than one @"));
        }
        if local.len() > MAX_LOCAL_PART_BYTES {
            return Err(IdentityError::Syntax("part before @ is longer than 64 bytes"));
        }
        check_local_part(local)?;
        let domain = ascii_domain(domain)?;
        let normalized = format!("{local}@{domain}");
        if normalized.len() > MAX_EMAIL_BYTES {
            return Err(IdentityError::Syntax("longer than 254 bytes"));
        }
        Ok(Email {
            at: local.len(),
            normalized,
        })
    }

    /// The canonical form: what is stored, compared and looked up.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// The part before the `@`, normalised (may be non-ASCII).
    pub fn local_part(&self) -> &str {
        &self.normalized[..self.at]
    }

    /// The domain, lower-case ASCII (internationalised labels in Punycode).
    pub fn domain(&self) -> &str {
        &self.normalized[self.at + 1..]
    }

    /// The canonical form, by value.
    pub fn into_string(self) -> String {
        self.normalized
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.normalized)
    }
}

/// A username: ASCII `[A-Za-z0-9._-]{3,32}` after trimming and NFKC. It keeps the case it was
/// typed in ([`Username::as_str`]) and compares, hashes and is looked up case-insensitively
/// ([`Username::normalized`]).
#[derive(Clone)]
pub struct Username {
    display: String,
    normalized: String,
}

impl Username {
    /// Parses a username; see the module documentation for the rules.
    pub fn parse(raw: &str) -> Result<Username, IdentityError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(IdentityError::Empty);
        }
        refuse_hidden(trimmed)?;
        let display = stable(trimmed, |text| text.nfkc().collect())?;
        let is_valid = (MIN_USERNAME_LEN..=MAX_USERNAME_LEN).contains(&display.len())
            && display
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !is_valid {
            return Err(IdentityError::Username);
        }
        let normalized = display.to_ascii_lowercase();
        Ok(Username { display, normalized })
    }

    /// The username as typed (after trimming and NFKC): for display and token claims.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The lower-case form: what uniqueness and login look-ups compare.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl PartialEq for Username {
    fn eq(&self, other: &Username) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Username {}

impl Hash for Username {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({:?})", self.display)
    }
}

/// NFKC, full Unicode lower-casing, NFKC: the second NFKC catches the rare lower-case mapping
/// that leaves text unnormalised.
fn fold_case(text: &str) -> String {
    let lowered = text.nfkc().collect::<String>().to_lowercase();
    lowered.nfkc().collect()
}

/// Applies `normalise` and checks that a second application changes nothing, so that the
/// stored form parses to itself.
fn stable(text: &str, normalise: impl Fn(&str) -> String) -> Result<String, IdentityError> {
    let once = normalise(text);
    if normalise(&once) == once {
        Ok(once)
    } else {
        Err(IdentityError::Unstable)
    }
}

/// Refuses control and invisible (default-ignorable) characters.
fn refuse_hidden(text: &str) -> Result<(), IdentityError> {
    for c in text.chars() {
        if c.is_control() {
            return Err(IdentityError::Control(c));
        }
        if !c.is_ascii() && c.identifier_type() == Some(IdentifierType::Default_Ignorable) {
            return Err(IdentityError::Invisible(c));
        }
    }
    Ok(())
}

/// The per-character rules and the mixed-script rule of the local part.
fn check_local_part(local: &str) -> Result<(), IdentityError> {
    for c in local.chars() {
        if c.is_whitespace() {
            return Err(IdentityError::Syntax("whitespace"));
        }
        if !c.is_ascii() && !c.identifier_allowed() {
            return Err(IdentityError::Disallowed(c));
        }
    }
    // ASCII punctuation (`.`, `+`, `_`, ...) is script-neutral but not "allowed" in UTS #39
    // identifiers, which would make every such address "unrestricted": leave it out.
    let letters: String = local.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    if letters
        .as_str()
        .check_restriction_level(RestrictionLevel::HighlyRestrictive)
    {
        Ok(())
    } else {
        Err(IdentityError::MixedScript)
    }
}

/// The domain rules and its IDNA conversion to lower-case ASCII.
fn ascii_domain(domain: &str) -> Result<String, IdentityError> {
    if domain.chars().any(char::is_whitespace) {
        return Err(IdentityError::Syntax("whitespace"));
    }
    let ascii = idna::domain_to_ascii_strict(domain).map_err(|_| IdentityError::Domain)?;
    // Checked on the converted form: UTS #46 maps some characters to dots (the ideographic full
    // stop, for one), and the rules must hold for what is stored.
    if !ascii.contains('.') {
        return Err(IdentityError::Syntax("domain has no dot"));
    }
    if ascii.starts_with('.') || ascii.ends_with('.') {
        return Err(IdentityError::Syntax("domain starts or ends with a dot"));
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(raw: &str) -> Result<String, IdentityError> {
        Email::parse(raw).map(Email::into_string)
    }

    #[test]
    fn look_alike_spellings_are_one_account_or_refused() {
        let cases: &[(&str, Result<&str, IdentityError>)] = &[
            ("ada@example.com", Ok("ada@example.com")),
            ("  Ada@Example.COM \t", Ok("ada@example.com")),
            // Fullwidth letters, at sign and full stop fold into ASCII.
            ("ＡＤＡ@example.com", Ok("ada@example.com")),
            ("ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ", Ok("ada@example.com")),
            // Decomposed and precomposed accents are one spelling.
            ("jose\u{301}@example.com", Ok("jos\u{e9}@example.com")),
            ("jos\u{e9}@example.com", Ok("jos\u{e9}@example.com")),
            ("JOS\u{c9}@example.com", Ok("jos\u{e9}@example.com")),
            // Compatibility forms: ligature, script capital, Kelvin sign.
            ("\u{fb01}le@example.com", Ok("file@example.com")),
            ("\u{210c}al@example.com", Ok("hal@example.com")),
            ("\u{212a}im@example.com", Ok("kim@example.com")),
            // Cyrillic `а` among Latin letters, and a Latin `a` among Cyrillic ones.
            ("\u{430}da@example.com", Err(IdentityError::MixedScript)),
            ("\u{430}\u{434}a@example.com", Err(IdentityError::MixedScript)),
            // Greek omicron in a Latin name.
            ("b\u{3bf}b@example.com", Err(IdentityError::MixedScript)),
            // Wholly Cyrillic and wholly Greek local parts are addresses of their own.
            (
                "\u{410}\u{434}\u{430}@example.com",
                Ok("\u{430}\u{434}\u{430}@example.com"),
            ),
            (
                "\u{39f}\u{394}\u{39f}\u{3a3}@example.com",
                Ok("\u{3bf}\u{3b4}\u{3bf}\u{3c2}@example.com"),
            ),
            // Latin with Han and kana is UTS #39 "highly restrictive": accepted.
            (
                "taro.\u{5c71}\u{7530}@example.jp",
                Ok("taro.\u{5c71}\u{7530}@example.jp"),
            ),
            // Invisible characters.
            ("a\u{200d}da@example.com", Err(IdentityError::Invisible('\u{200d}'))),
            ("a\u{200c}da@example.com", Err(IdentityError::Invisible('\u{200c}'))),
            ("a\u{200b}da@example.com", Err(IdentityError::Invisible('\u{200b}'))),
            ("a\u{ad}da@example.com", Err(IdentityError::Invisible('\u{ad}'))),
            ("\u{feff}ada@example.com", Err(IdentityError::Invisible('\u{feff}'))),
            ("ada@exam\u{ad}ple.com", Err(IdentityError::Invisible('\u{ad}'))),
            // Bidi overrides and marks.
            ("ada\u{202e}moc@example.com", Err(IdentityError::Invisible('\u{202e}'))),
            ("ada\u{200f}@example.com", Err(IdentityError::Invisible('\u{200f}'))),
            ("ada\u{2066}@example.com", Err(IdentityError::Invisible('\u{2066}'))),
            // Controls.
            ("ada\u{0}@example.com", Err(IdentityError::Control('\u{0}'))),
            ("ad\na@example.com", Err(IdentityError::Control('\n'))),
            // Symbols and emoji are not identifier characters.
            ("ada\u{2665}@example.com", Err(IdentityError::Disallowed('\u{2665}'))),
            ("\u{1f600}@example.com", Err(IdentityError::Disallowed('\u{1f600}'))),
        ];
        for (raw, expected) in cases {
            let expected = expected.clone().map(str::to_owned);
            assert_eq!(email(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn the_old_syntax_rules_still_hold() {
        for good in ["a@example.com", "first.last+tag@sub.example.co", "o'neil@example.org"] {
            assert_eq!(email(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "",
            "   ",
            "a",
            "a@b",
            "@example.com",
            "a@@example.com",
            "a@b@example.com",
            "a b@example.com",
            "a@.com",
            "a@example.",
            "a@exa mple.com",
            "a@[192.0.2.1]",
            "a@exa_mple.com",
            "a@-example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let local = "a".repeat(MAX_LOCAL_PART_BYTES);
        assert!(Email::parse(&format!("{local}@example.com")).is_ok());
        assert!(Email::parse(&format!("{local}a@example.com")).is_err());
        // Non-ASCII local parts count in bytes, as stored.
        let cyrillic = "\u{434}".repeat(33);
        assert!(Email::parse(&format!("{cyrillic}@example.com")).is_err());
        let label = "d".repeat(60);
        let long = format!("{local}@{label}.{label}.{label}.{label}.com");
        assert!(long.len() > MAX_EMAIL_BYTES);
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn domains_are_stored_in_ascii_and_unicode_labels_match_their_punycode() {
        assert_eq!(email("ada@B\u{fc}cher.example"), Ok("ada@xn--bcher-kva.example".into()));
        assert_eq!(
            email("ada@xn--bcher-kva.example"),
            Ok("ada@xn--bcher-kva.example".into())
        );
        assert_eq!(
            email("ada@XN--BCHER-KVA.example"),
            Ok("ada@xn--bcher-kva.example".into())
        );
        // The ideographic full stop is a label separator in IDNA.
        assert_eq!(email("ada@example\u{3002}com"), Ok("ada@example.com".into()));
        let parsed = Email::parse("Ada@B\u{fc}cher.example").unwrap();
        assert_eq!((parsed.local_part(), parsed.domain()), ("ada", "xn--bcher-kva.example"));
        // An invalid A-label is not a domain.
        assert_eq!(email("ada@xn--zz.example"), Err(IdentityError::Domain));
    }

    #[test]
    fn usernames_stay_ascii_and_compare_case_insensitively() {
        let alice = Username::parse("Alice_01").unwrap();
        assert_eq!(alice.as_str(), "Alice_01");
        assert_eq!(alice.normalized(), "alice_01");
        assert_eq!(alice, Username::parse("alice_01").unwrap());
        // Fullwidth folds under NFKC and keeps its case for display.
        let fullwidth = Username::parse(" \u{ff21}lice_01 ").unwrap();
        assert_eq!(fullwidth.as_str(), "Alice_01");
        assert_eq!(fullwidth, alice);
        let cases: &[(&str, IdentityError)] = &[
            ("", IdentityError::Empty),
            ("al", IdentityError::Username),
            ("alice smith", IdentityError::Username),
            ("<script>", IdentityError::Username),
            ("\u{430}lice", IdentityError::Username),
            ("ali\u{e9}", IdentityError::Username),
            ("ali\u{200d}ce", IdentityError::Invisible('\u{200d}')),
            ("alice\u{202e}", IdentityError::Invisible('\u{202e}')),
            ("ali\tce", IdentityError::Control('\t')),
        ];
        for (raw, expected) in cases {
            assert_eq!(Username::parse(raw).as_ref().err(), Some(expected), "{raw:?}");
        }
        assert!(Username::parse(&"a".repeat(MAX_USERNAME_LEN)).is_ok());
        assert!(Username::parse(&"a".repeat(MAX_USERNAME_LEN + 1)).is_err());
    }

    #[test]
    fn error_codes_are_distinct_for_the_look_alike_refusals() {
        assert_eq!(IdentityError::MixedScript.code(), "mixed_script");
        assert_eq!(IdentityError::Invisible('\u{200d}').code(), "invisible_character");
        assert_eq!(
            IdentityError::Invisible('\u{200d}').to_string(),
            "invisible character U+200D is not allowed"
        );
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;

        /// Characters that usually make a valid identifier: ASCII, fullwidth and accented Latin
        /// letters (composed and not), compatibility forms that fold to Latin.
        const PLAIN: &[char] = &[
            'a',
            'b',
            'k',
            'z',
            'A',
            'Q',
            'Z',
            '0',
            '9',
            '.',
            '_',
            '-',
            '+',
            '\'',
            '\u{e9}',
            'e',
            '\u{301}',
            '\u{308}',
            '\u{ff21}',
            '\u{ff41}',
            '\u{fb01}',
            '\u{210c}',
            '\u{212a}',
            '\u{df}',
            '\u{1e9e}',
            '\u{c5}',
            '\u{1d400}',
            '\u{2460}',
        ];

        /// Characters that exercise the refusals and the odd corners of case mapping: other
        /// scripts, invisible and bidi characters, spaces, compatibility forms with spaces or
        /// dots, fullwidth `@` and `.`, Greek final sigma, the dotted capital I.
        const TRICKY: &[char] = &[
            '@', ' ', '\u{ff20}', '\u{ff0e}', '\u{3002}', '\u{a8}', '\u{130}', '\u{3a3}', '\u{3c3}', '\u{3c2}',
            '\u{430}', '\u{410}', '\u{434}', '\u{3bf}', '\u{5c71}', '\u{3042}', '\u{200d}', '\u{ad}', '\u{202e}',
            '\u{2126}', '\u{2665}',
        ];

        /// Username characters: the ASCII alphabet and forms that NFKC maps into it (fullwidth,
        /// mathematical bold, circled digit, ligature, script capital, Kelvin sign), and `é`.
        const USERNAME: &[char] = &[
            'a',
            'b',
            'z',
            'A',
            'Z',
            '0',
            '9',
            '.',
            '_',
            '-',
            '\u{ff21}',
            '\u{ff41}',
            '\u{1d400}',
            '\u{2460}',
            '\u{fb01}',
            '\u{210c}',
            '\u{212a}',
            '\u{e9}',
        ];

        /// Domain characters: ASCII, a German umlaut, fullwidth letters, the hyphen.
        const DOMAIN: &[char] = &['a', 'm', 'x', 'E', '-', '\u{fc}', '\u{dc}', '\u{ff41}', '\u{ff0e}'];

        fn text(chars: &'static [char], len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
            let one = prop_oneof![14 => prop::sample::select(chars), 1 => prop::sample::select(TRICKY)];
            prop::collection::vec(one, len).prop_map(|chars| chars.into_iter().collect())
        }

        fn raw_email() -> impl Strategy<Value = String> {
            (text(PLAIN, 1..12), text(DOMAIN, 1..8), text(DOMAIN, 2..4))
                .prop_map(|(local, domain, tld)| format!("{local}@{domain}.{tld}"))
        }

        fn raw_username() -> impl Strategy<Value = String> {
            text(USERNAME, 3..20)
        }

        /// The properties below only say something about inputs that parse: check that the
        /// generators produce plenty of them, and plenty of refusals too.
        #[test]
        fn generators_produce_both_accepted_and_refused_inputs() {
            let mut runner = TestRunner::deterministic();
            let (emails, usernames) = (raw_email(), raw_username());
            let (mut email_ok, mut username_ok) = (0, 0);
            for _ in 0..1000 {
                email_ok += usize::from(Email::parse(&emails.new_tree(&mut runner).unwrap().current()).is_ok());
                username_ok +=
                    usize::from(Username::parse(&usernames.new_tree(&mut runner).unwrap().current()).is_ok());
            }
            eprintln!("generated inputs that parse: {email_ok} of 1000 emails, {username_ok} of 1000 usernames");
            assert!((200..900).contains(&email_ok), "{email_ok} of 1000 emails parsed");
            assert!(
                (100..900).contains(&username_ok),
                "{username_ok} of 1000 usernames parsed"
            );
        }

        proptest! {
            #[test]
            fn email_parse_is_idempotent(raw in raw_email()) {
                if let Ok(parsed) = Email::parse(&raw) {
                    let again = Email::parse(parsed.as_str());
                    prop_assert_eq!(again.as_ref(), Ok(&parsed), "{:?}", raw);
                }
            }

            #[test]
            fn email_parse_is_idempotent_on_any_text(raw in any::<String>()) {
                if let Ok(parsed) = Email::parse(&raw) {
                    let again = Email::parse(parsed.as_str());
                    prop_assert_eq!(again.as_ref(), Ok(&parsed));
                }
            }

            #[test]
            fn username_parse_is_idempotent(raw in raw_username()) {
                if let Ok(parsed) = Username::parse(&raw) {
                    let again = Username::parse(parsed.as_str()).unwrap();
                    prop_assert_eq!(again.as_str(), parsed.as_str());
                    prop_assert_eq!(again.normalized(), parsed.normalized());
                    let lowered = Username::parse(parsed.normalized()).unwrap();
                    prop_assert_eq!(lowered.normalized(), parsed.normalized());
                }
            }
        }
    }
}
