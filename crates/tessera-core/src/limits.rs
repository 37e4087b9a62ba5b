//! Rate-limit strings in the syntax of the Python `limits` library that slowapi uses (S7), so
//! that a seed user's `RATE_LIMIT_LOGIN="5/minute"` works unchanged.
//!
//! Grammar, per item: `<count> ("/" | "per") [<multiple>] <granularity>[s]`, case-insensitive,
//! with free whitespace; granularity is `second`, `minute`, `hour`, `day`, `month` (30 days) or
//! `year` (360 days), as in `limits`. Items are separated by `;`, `,` or `|`:
//! `"5/minute;100/day"`, `"100 per hour"`, `"10/5 minutes"`.

use std::fmt;
use std::str::FromStr;

/// One limit: at most `count` events per `period_secs` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Events allowed per period.
    pub count: u32,
    /// Period length in seconds.
    pub period_secs: u64,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (multiple, unit) = GRANULARITIES
            .iter()
            .rev()
            .find(|(_, secs)| self.period_secs.is_multiple_of(*secs))
            .map_or((self.period_secs, "second"), |(name, secs)| {
                (self.period_secs / secs, name)
            });
        if multiple == 1 {
            write!(f, "{}/{}", self.count, unit)
        } else {
            write!(f, "{}/{} {}s", self.count, multiple, unit)
        }
    }
}

/// One or more limits that all apply (`"5/minute;100/day"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateLimitSpec(Vec<RateLimit>);

impl RateLimitSpec {
    /// The limits, in the order written.
    pub fn limits(&self) -> &[RateLimit] {
        &self.0
    }
}

impl fmt::Display for RateLimitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, limit) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{limit}")?;
        }
        Ok(())
    }
}

/// Why a limit string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitParseError {
    /// The string has no limit at all.
    #[error("empty rate limit: expected e.g. \"5/minute\" or \"100 per hour\"")]
    Empty,
    /// One item is not `<count>/<granularity>`.
    #[error(
        "invalid rate limit {item:?}: {reason}; expected e.g. \"5/minute\", \"100 per hour\" or \"5/minute;100/day\""
    )]
    Invalid {
        /// The offending item.
        item: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

const GRANULARITIES: [(&str, u64); 6] = [
    ("second", 1),
    ("minute", 60),
    ("hour", 3_600),
    ("day", 86_400),
    ("month", 2_592_000),
    ("year", 31_104_000),
];

impl FromStr for RateLimitSpec {
    type Err = LimitParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let items: Vec<&str> = text.split([';', ',', '|']).collect();
        if items.iter().all(|item| item.trim().is_empty()) {
            return Err(LimitParseError::Empty);
        }
        items
            .into_iter()
            .map(parse_item)
            .collect::<Result<Vec<_>, _>>()
            .map(RateLimitSpec)
    }
}

fn parse_item(item: &str) -> Result<RateLimit, LimitParseError> {
    let invalid = |reason| LimitParseError::Invalid {
        item: item.trim().to_owned(),
        reason,
    };
    let lowered = item.trim().to_ascii_lowercase();
    let (count, rest) = split_number(&lowered);
    let count = count.ok_or_else(|| invalid("missing count"))?;
    let rest = rest.trim_start();
    let rest = if let Some(rest) = rest.strip_prefix('/') {
        rest
    } else if let Some(rest) = rest
        .strip_prefix("per")
        .filter(|r| r.starts_with(|c: char| c.is_ascii_whitespace() || c.is_ascii_digit()))
    {
        rest
    } else {
        return Err(invalid("expected \"/\" or \"per\" after the count"));
    };
    let (multiple, unit) = split_number(rest.trim_start());
    let unit = unit.trim();
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    let (_, unit_secs) = GRANULARITIES
        .iter()
        .find(|(name, _)| *name == unit)
        .ok_or_else(|| invalid("unknown granularity (second, minute, hour, day, month, year)"))?;
    let count = u32::try_from(count).map_err(|_| invalid("count too large"))?;
    if count == 0 {
        return Err(invalid("count must be at least 1"));
    }
    let multiple = multiple.unwrap_or(1);
    if multiple == 0 {
        return Err(invalid("period multiple must be at least 1"));
    }
    let period_secs = multiple
        .checked_mul(*unit_secs)
        .ok_or_else(|| invalid("period too long"))?;
    Ok(RateLimit { count, period_secs })
}

/// Splits a leading decimal number off `text`.
fn split_number(text: &str) -> (Option<u64>, &str) {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if end == 0 {
        return (None, text);
    }
    // Too many digits parses as None, reported by the caller as a missing or bad number.
    (text[..end].parse().ok().or(Some(u64::MAX)), &text[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<(u32, u64)> {
        text.parse::<RateLimitSpec>()
            .unwrap()
            .limits()
            .iter()
            .map(|l| (l.count, l.period_secs))
            .collect()
    }

    #[test]
    fn seed_defaults_parse() {
        assert_eq!(parse("5/minute"), vec![(5, 60)]);
        assert_eq!(parse("3/hour"), vec![(3, 3600)]);
        assert_eq!(parse("100/hour"), vec![(100, 3600)]);
    }

    #[test]
    fn limits_library_spellings_parse() {
        assert_eq!(parse("100 per hour"), vec![(100, 3600)]);
        assert_eq!(parse("100 PER Hour"), vec![(100, 3600)]);
        assert_eq!(parse(" 10 / 5 minutes "), vec![(10, 300)]);
        assert_eq!(parse("1/second"), vec![(1, 1)]);
        assert_eq!(parse("2 per 3 days"), vec![(2, 259_200)]);
        assert_eq!(parse("1/month"), vec![(1, 2_592_000)]);
        assert_eq!(parse("1/year"), vec![(1, 31_104_000)]);
    }

    #[test]
    fn several_limits_combine_with_any_separator() {
        assert_eq!(parse("5/minute;100/day"), vec![(5, 60), (100, 86_400)]);
        assert_eq!(
            parse("5/minute, 100/day | 1000/month"),
            vec![(5, 60), (100, 86_400), (1000, 2_592_000)]
        );
    }

    #[test]
    fn bad_strings_give_clear_errors() {
        assert_eq!("".parse::<RateLimitSpec>(), Err(LimitParseError::Empty));
        assert_eq!(" ; ".parse::<RateLimitSpec>(), Err(LimitParseError::Empty));
        for (text, reason) in [
            ("five/minute", "missing count"),
            ("5 minute", "expected \"/\" or \"per\" after the count"),
            (
                "5/fortnight",
                "unknown granularity (second, minute, hour, day, month, year)",
            ),
            ("0/minute", "count must be at least 1"),
            ("5/0 minutes", "period multiple must be at least 1"),
            ("99999999999/minute", "count too large"),
            ("5/minute;", "missing count"),
            (
                "5/minute extra",
                "unknown granularity (second, minute, hour, day, month, year)",
            ),
            ("5 perminute", "expected \"/\" or \"per\" after the count"),
        ] {
            match text.parse::<RateLimitSpec>() {
                Err(LimitParseError::Invalid { reason: got, .. }) => assert_eq!(got, reason, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "5/minute",
            "100/hour",
            "5/minute;100/day",
            "10/5 minutes",
            "7/90 seconds",
        ] {
            let spec: RateLimitSpec = text.parse().unwrap();
            assert_eq!(spec.to_string().parse::<RateLimitSpec>().unwrap(), spec, "{text}");
        }
        assert_eq!("100 per hour".parse::<RateLimitSpec>().unwrap().to_string(), "100/hour");
    }
}
