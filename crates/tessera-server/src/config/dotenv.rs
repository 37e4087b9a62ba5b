//! `.env` files read the way python-dotenv reads them, so the seed's `.env` works unchanged
//! (issue 21).
//!
//! The seed's pydantic `Settings` loads `.env` through python-dotenv, and dotenvy disagrees
//! with it on lines the seed's users write: it strips the inner quotes of an unquoted
//! `CORS_ORIGINS=["https://app.example.com"]` and refuses `RATE_LIMIT_LOGIN=5 per minute`. No
//! maintained crate follows python-dotenv, so this is a small port of python-dotenv 1.2's parser
//! (`dotenv/parser.py`) and of its `${NAME}` interpolation (`dotenv/variables.py`), as
//! `dotenv_values` applies them:
//!
//! - blank lines and `#` comment lines are skipped; a statement may start with `export `;
//! - a key is a run of characters other than `=`, `#` and whitespace, or is `'single quoted'`;
//!   whitespace around `=` is ignored; a key with no `=` has no value and is not set;
//! - an unquoted value runs to the end of the line, taken verbatim (inner quotes kept), with
//!   a ` #` comment removed and surrounding whitespace trimmed; `KEY= # note` is empty;
//! - a `'single'` or `"double"` quoted value may span lines; a backslash escapes the next
//!   character; in single quotes only `\\` and `\'` are decoded, in double quotes `\\ \' \" \a
//!   \b \f \n \r \t \v` are, and other escapes are kept as written; after the closing quote
//!   only whitespace and a `#` comment may follow;
//! - `${NAME}` and `${NAME:-default}` are replaced in every value by the environment's
//!   `NAME` or an earlier line's (an earlier line wins, as with `dotenv_values`), else by
//!   `default`, else by nothing.
//!
//! Where python-dotenv warns and skips a statement it cannot parse, Tessera stops with the line
//! number: a silently ignored line in a security configuration is worse than a refusal.

use std::collections::HashMap;

/// A statement that cannot be parsed: where it starts and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct DotenvError {
    /// 1-based line where the statement starts.
    pub line: usize,
    /// What is wrong, in words.
    pub reason: &'static str,
}

/// Parses `.env` text into its assignments, in file order, `${...}` resolved against `env`
/// (the process environment) and the earlier assignments.
pub fn parse(text: &str, env: &HashMap<String, String>) -> Result<Vec<(String, String)>, DotenvError> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let mut assignments: Vec<(String, String)> = Vec::new();
    while let Some((key, value)) = parser.statement()? {
        if let (Some(key), Some(value)) = (key, value) {
            let resolved = interpolate(&value, |name| {
                assignments
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .or_else(|| env.get(name).map(String::as_str))
            });
            assignments.push((key, resolved));
        }
    }
    Ok(assignments)
}

/// Replaces `${NAME}` and `${NAME:-default}` (python-dotenv's POSIX subset; a bare `$NAME` is
/// literal).
fn interpolate<'a>(value: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else { break };
        let inner = &rest[start + 2..start + 2 + len];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, default),
            None => (inner, ""),
        };
        if name.contains(':') {
            // Not the syntax python-dotenv recognises (`[^}:]*`): kept as written.
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        out.push_str(lookup(name).unwrap_or(default));
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    out
}

/// A statement's key (`None` for a comment) and value (`None` without `=`).
type Statement = (Option<String>, Option<String>);

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

/// Whitespace that does not end a line (python's `[^\S\r\n]`).
fn is_inline_space(c: char) -> bool {
    c.is_whitespace() && c != '\r' && c != '\n'
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn line_of(&self, pos: usize) -> usize {
        let before = &self.chars[..pos];
        let breaks = before
            .iter()
            .enumerate()
            .filter(|&(i, &c)| c == '\n' || (c == '\r' && before.get(i + 1) != Some(&'\n')))
            .count();
        breaks + 1
    }

    fn skip_while(&mut self, keep: impl Fn(char) -> bool) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// One statement: `None` at the end of the text; `(None, _)` for a comment; `(key, None)`
    /// for a key without `=`.
    fn statement(&mut self) -> Result<Option<Statement>, DotenvError> {
        self.skip_while(char::is_whitespace);
        if self.peek().is_none() {
            return Ok(None);
        }
        let line = self.line_of(self.pos);
        let fail = |reason| DotenvError { line, reason };
        // `export` followed by inline whitespace.
        let export: Vec<char> = "export".chars().collect();
        if self.chars[self.pos..].starts_with(&export)
            && self
                .chars
                .get(self.pos + export.len())
                .copied()
                .is_some_and(is_inline_space)
        {
            self.pos += export.len();
            self.skip_while(is_inline_space);
        }
        let key = match self.peek() {
            Some('#') => None,
            Some('\'') => {
                self.pos += 1;
                let len = self.skip_while(|c| c != '\'');
                if len == 0 || self.peek() != Some('\'') {
                    return Err(fail("a quoted key needs a closing quote"));
                }
                self.pos += 1;
                Some(self.chars[self.pos - 1 - len..self.pos - 1].iter().collect())
            }
            _ => {
                let from = self.pos;
                if self.skip_while(|c| c != '=' && c != '#' && !c.is_whitespace()) == 0 {
                    return Err(fail("expected NAME=value"));
                }
                Some(self.chars[from..self.pos].iter().collect::<String>())
            }
        };
        self.skip_while(is_inline_space);
        let value = if self.peek() == Some('=') {
            self.pos += 1;
            let spaced = self.skip_while(is_inline_space) > 0;
            if spaced && self.peek() == Some('#') {
                Some(String::new())
            } else {
                Some(self.value().map_err(fail)?)
            }
        } else {
            None
        };
        // An optional comment, then the end of the line.
        let mark = self.pos;
        self.skip_while(is_inline_space);
        if self.peek() == Some('#') {
            self.skip_while(|c| c != '\r' && c != '\n');
        } else {
            self.pos = mark;
        }
        self.skip_while(is_inline_space);
        match self.peek() {
            None | Some('\n') => {}
            Some('\r') => {}
            Some(_) => return Err(fail("unexpected text after the value (quote the whole value)")),
        }
        Ok(Some((key, value)))
    }

    fn value(&mut self) -> Result<String, &'static str> {
        match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                self.pos += 1;
                let from = self.pos;
                loop {
                    match self.peek() {
                        None => {
                            return Err(if quote == '"' {
                                "a double-quoted value needs a closing \""
                            } else {
                                "a single-quoted value needs a closing '"
                            });
                        }
                        Some('\\') if self.pos + 1 < self.chars.len() => self.pos += 2,
                        Some(c) if c == quote => break,
                        Some(_) => self.pos += 1,
                    }
                }
                let raw: String = self.chars[from..self.pos].iter().collect();
                self.pos += 1;
                Ok(decode_escapes(&raw, quote == '"'))
            }
            None | Some('\r' | '\n') => Ok(String::new()),
            Some(_) => {
                let from = self.pos;
                self.skip_while(|c| c != '\r' && c != '\n');
                let part: String = self.chars[from..self.pos].iter().collect();
                Ok(strip_comment(&part).trim_end().to_owned())
            }
        }
    }
}

/// Removes python's `\s+#.*` from an unquoted value: the first `#` preceded by whitespace ends it.
fn strip_comment(part: &str) -> &str {
    let mut previous_is_space = false;
    for (i, c) in part.char_indices() {
        if c == '#' && previous_is_space {
            return part[..i].trim_end();
        }
        previous_is_space = c.is_whitespace();
    }
    part
}

/// python-dotenv's `decode_escapes`: `\\` and `\'` in single quotes; in double quotes also
/// `\"` and the C escapes `\a \b \f \n \r \t \v`. Others stay as written.
fn decode_escapes(raw: &str, double: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.peek().copied() {
            Some(e @ ('\\' | '\'')) => Some(e),
            Some('"') if double => Some('"'),
            Some('a') if double => Some('\u{7}'),
            Some('b') if double => Some('\u{8}'),
            Some('f') if double => Some('\u{c}'),
            Some('n') if double => Some('\n'),
            Some('r') if double => Some('\r'),
            Some('t') if double => Some('\t'),
            Some('v') if double => Some('\u{b}'),
            _ => None,
        };
        match decoded {
            Some(d) => {
                out.push(d);
                chars.next();
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
        parse(text, &HashMap::new())
    }

    /// Each row: a `.env` text and what python-dotenv 1.2.4's `dotenv_values` gives for it
    /// (checked with python-dotenv itself; `None` = "could not parse statement").
    #[test]
    fn python_dotenv_cases_give_python_dotenv_results() {
        type Expected = Option<&'static [(&'static str, &'static str)]>;
        let cases: &[(&str, Expected)] = &[
            // Issue 21's rows.
            (
                r#"CORS_ORIGINS=["https://app.example.com"]"#,
                Some(&[("CORS_ORIGINS", r#"["https://app.example.com"]"#)]),
            ),
            (
                r#"CORS_ORIGINS=["https://a.example.com", "https://b.example.com"]"#,
                Some(&[("CORS_ORIGINS", r#"["https://a.example.com", "https://b.example.com"]"#)]),
            ),
            (
                "RATE_LIMIT_LOGIN=5 per minute",
                Some(&[("RATE_LIMIT_LOGIN", "5 per minute")]),
            ),
            // Comments.
            ("A=b # comment", Some(&[("A", "b")])),
            ("A=b#notcomment", Some(&[("A", "b#notcomment")])),
            ("A= #abc", Some(&[("A", "")])),
            ("A=#abc", Some(&[("A", "#abc")])),
            ("A=a\tb\t#c", Some(&[("A", "a\tb")])),
            ("  # indented comment\n# another\n", Some(&[])),
            // Whitespace.
            ("A=  spaced value   ", Some(&[("A", "spaced value")])),
            ("A = b", Some(&[("A", "b")])),
            ("\n\n  A=1\n\nB=2\n", Some(&[("A", "1"), ("B", "2")])),
            ("A=1\r\nB=2\r\n", Some(&[("A", "1"), ("B", "2")])),
            // Quotes and escapes.
            (r"A='single $X \' \\ \n'", Some(&[("A", r"single $X ' \ \n")])),
            (r#"A="double \" \\ \n \t \q""#, Some(&[("A", "double \" \\ \n \t \\q")])),
            (r"A='it\'s'", Some(&[("A", "it's")])),
            (r#"A="quoted" # trailing comment"#, Some(&[("A", "quoted")])),
            ("A='a' ", Some(&[("A", "a")])),
            ("A=\"multi\nline\"", Some(&[("A", "multi\nline")])),
            ("'A B'=quoted key", Some(&[("A B", "quoted key")])),
            // export, empty values, keys without a value.
            ("export A=exported", Some(&[("A", "exported")])),
            ("export  A=two spaces", Some(&[("A", "two spaces")])),
            ("A=", Some(&[("A", "")])),
            ("A", Some(&[])),
            // Interpolation.
            (
                "A=1\nB=${A}-${MISSING}-${MISSING:-dflt}",
                Some(&[("A", "1"), ("B", "1--dflt")]),
            ),
            ("A=$A {A} ${A", Some(&[("A", "$A {A} ${A")])),
            // Statements python-dotenv cannot parse.
            (r#"A="x" junk"#, None),
            ("=value", None),
            (r#"A="unterminated"#, None),
            (r"A='x\'", None),
            (r#"A="a" B=2"#, None),
        ];
        for (text, expected) in cases {
            let result = parsed(text);
            match expected {
                Some(pairs) => {
                    let pairs: Vec<(String, String)> =
                        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                    assert_eq!(result, Ok(pairs), "{text:?}");
                }
                None => assert!(result.is_err(), "{text:?} -> {result:?}"),
            }
        }
    }

    #[test]
    fn an_unparseable_line_is_named_by_its_number() {
        let error = parsed("# settings\nA=1\n\nB=\"open\nC=3\n").unwrap_err();
        assert_eq!(error.line, 4, "{error}");
        assert!(error.to_string().starts_with("line 4: "), "{error}");
        let error = parsed("A=1\r\n=2\r\n").unwrap_err();
        assert_eq!(error.line, 2);
    }

    #[test]
    fn interpolation_reads_the_environment_and_earlier_lines_win() {
        let env: HashMap<String, String> = [("HOST".to_owned(), "db".to_owned()), ("A".to_owned(), "env".to_owned())]
            .into_iter()
            .collect();
        let parsed = parse("URL=postgresql://${HOST}/x\nA=file\nB=${A}\n", &env).unwrap();
        assert_eq!(parsed[0].1, "postgresql://db/x");
        assert_eq!(parsed[2].1, "file");
    }
}
