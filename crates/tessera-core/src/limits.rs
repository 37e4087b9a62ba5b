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

/// How many hits one key has in the current and the previous fixed window of one limit: the
/// state of the sliding-window counter.
///
/// Tessera limits with a sliding window counter rather than slowapi's fixed window: a fixed
/// window lets a client spend its allowance at the end of one window and again at the start of
/// the next (10 logins in two seconds under "5/minute"). The estimate
/// `previous * (1 - elapsed / period) + current` smooths that boundary away, needs only two
/// counters per key, and is exact and atomic when the counters live in one Redis script.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Hits in the previous window.
    pub previous: u64,
    /// Hits in the current window.
    pub current: u64,
}

/// The answer for one request against a [`RateLimitSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed (it was counted only if so).
    pub allowed: bool,
    /// The limit reported in the headers: the one that refused, or the one with the fewest
    /// requests left.
    pub limit: RateLimit,
    /// Requests left under `limit` after this one (`X-RateLimit-Remaining`).
    pub remaining: u64,
    /// When the current window of `limit` ends, Unix seconds (`X-RateLimit-Reset`).
    pub reset_at: i64,
    /// Seconds until a request would be allowed, 0 when allowed (`Retry-After`).
    pub retry_after_secs: u64,
}

impl RateLimit {
    /// The period in milliseconds.
    pub fn period_ms(&self) -> i64 {
        i64::try_from(self.period_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Start of the fixed window containing `now_ms`.
    pub fn window_start_ms(&self, now_ms: i64) -> i64 {
        now_ms - now_ms.rem_euclid(self.period_ms())
    }

    /// Checks one more hit against this limit, given the counts at `now_ms`.
    fn check(&self, counts: WindowCounts, now_ms: i64) -> (bool, u64, u64) {
        let period = u128::from(self.period_secs) * 1000;
        let elapsed = u128::try_from(now_ms.rem_euclid(self.period_ms())).unwrap_or(0);
        let count = u128::from(self.count);
        let previous = u128::from(counts.previous);
        let current = u128::from(counts.current);
        // All in "hit-milliseconds": estimate * period, to stay in integers.
        let weighted = previous * (period - elapsed) + current * period;
        let allowed = weighted + period <= count * period;
        if allowed {
            let remaining = (count * period - weighted - period) / period;
            return (true, u64::try_from(remaining).unwrap_or(u64::MAX), 0);
        }
        // Refused: how long until one more hit fits, if nothing else arrives.
        let wait_ms = if current < count && previous > 0 {
            // Still within this window, as the previous window's weight decays.
            let needed =
                (previous * (period - elapsed) + current * period + period - count * period).div_ceil(previous);
            needed.min(period - elapsed)
        } else {
            // Only in the next window, where this window's count becomes the decaying one.
            let rest_of_window = period - elapsed;
            let in_next = if current < count {
                0
            } else {
                // current * (period - t) + period <= count * period  <=>  t >= period - (count - 1) * period / current
                let allowed_weight = (count - 1) * period;
                period.saturating_sub(allowed_weight / current.max(1))
            };
            rest_of_window + in_next
        };
        (
            false,
            0,
            u64::try_from(wait_ms.div_ceil(1000)).unwrap_or(u64::MAX).max(1),
        )
    }
}

/// Decides one request against every limit of `spec`, given each limit's counts (in the order
/// of `spec.limits()`) before this request. The request is allowed only if every limit allows
/// it; callers count it in every limit exactly when it is allowed.
pub fn decide(spec: &RateLimitSpec, counts: &[WindowCounts], now_ms: i64) -> Decision {
    let mut verdict: Option<Decision> = None;
    for (limit, counts) in spec
        .limits()
        .iter()
        .zip(counts.iter().copied().chain(std::iter::repeat(WindowCounts::default())))
    {
        let (allowed, remaining, retry_after_secs) = limit.check(counts, now_ms);
        let reset_at = (limit.window_start_ms(now_ms) + limit.period_ms()).div_euclid(1000);
        let this = Decision {
            allowed,
            limit: *limit,
            remaining,
            reset_at,
            retry_after_secs,
        };
        verdict = Some(match verdict {
            None => this,
            // A refusal beats an allowance; among refusals the longest wait; among
            // allowances the fewest remaining.
            Some(best) => match (best.allowed, this.allowed) {
                (true, false) => this,
                (false, true) => best,
                (false, false) if this.retry_after_secs > best.retry_after_secs => this,
                (true, true) if this.remaining < best.remaining => this,
                _ => best,
            },
        });
    }
    verdict.unwrap_or(Decision {
        allowed: true,
        limit: RateLimit {
            count: u32::MAX,
            period_secs: 1,
        },
        remaining: u64::MAX,
        reset_at: now_ms.div_euclid(1000),
        retry_after_secs: 0,
    })
}

#[cfg(test)]
mod window_tests {
    use super::*;

    fn spec(text: &str) -> RateLimitSpec {
        text.parse().unwrap()
    }

    /// Replays hits through `decide`, keeping the counters as a backend would.
    struct Simulated {
        spec: RateLimitSpec,
        windows: Vec<(i64, WindowCounts)>,
    }

    impl Simulated {
        fn new(text: &str) -> Simulated {
            let spec = spec(text);
            let windows = vec![(i64::MIN, WindowCounts::default()); spec.limits().len()];
            Simulated { spec, windows }
        }

        fn hit(&mut self, now_ms: i64) -> Decision {
            for (limit, (start, counts)) in self.spec.limits().iter().zip(self.windows.iter_mut()) {
                let window = limit.window_start_ms(now_ms);
                if window != *start {
                    let previous = if window - limit.period_ms() == *start {
                        counts.current
                    } else {
                        0
                    };
                    *start = window;
                    *counts = WindowCounts { previous, current: 0 };
                }
            }
            let counts: Vec<WindowCounts> = self.windows.iter().map(|(_, c)| *c).collect();
            let decision = decide(&self.spec, &counts, now_ms);
            if decision.allowed {
                for (_, counts) in &mut self.windows {
                    counts.current += 1;
                }
            }
            decision
        }
    }

    #[test]
    fn a_fresh_key_gets_exactly_count_hits_in_a_window() {
        let mut sim = Simulated::new("5/minute");
        let decisions: Vec<Decision> = (0..7).map(|i| sim.hit(1_000 + i)).collect();
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 5);
        assert_eq!(
            decisions.iter().map(|d| d.remaining).take(5).collect::<Vec<_>>(),
            vec![4, 3, 2, 1, 0]
        );
        assert!(!decisions[5].allowed);
        assert_eq!(decisions[5].reset_at, 60);
        assert!(decisions[5].retry_after_secs >= 59, "{:?}", decisions[5]);
    }

    #[test]
    fn the_window_boundary_does_not_double_the_allowance() {
        // Five hits at the very end of one window: a fixed window would allow five more at
        // the start of the next; the sliding estimate allows none right away.
        let mut sim = Simulated::new("5/minute");
        for i in 0..5 {
            assert!(sim.hit(59_000 + i).allowed);
        }
        assert!(!sim.hit(60_100).allowed);
        // Halfway through the next window half the allowance is back (5 * 0.5 = 2.5 used).
        let allowed = (0..5).filter(|i| sim.hit(90_000 + i).allowed).count();
        assert_eq!(allowed, 2);
    }

    #[test]
    fn retry_after_is_when_the_next_hit_would_be_allowed() {
        let mut sim = Simulated::new("5/minute");
        for i in 0..5 {
            sim.hit(59_000 + i);
        }
        let refused = sim.hit(60_000);
        assert!(!refused.allowed);
        // With 5 in the previous window, one hit fits once the weight drops to 4: 12 s in.
        assert_eq!(refused.retry_after_secs, 12);
        assert!(!sim.hit(60_000 + 11_000).allowed);
        assert!(sim.hit(60_000 + 12_001).allowed);
    }

    #[test]
    fn retry_after_covers_a_full_current_window() {
        let mut sim = Simulated::new("2/minute");
        assert!(sim.hit(0).allowed);
        assert!(sim.hit(1).allowed);
        let refused = sim.hit(30_000);
        // 30 s left in this window, then the weight of 2 must fall to 1: 30 s more.
        assert_eq!(refused.retry_after_secs, 60);
        assert!(!sim.hit(89_000).allowed);
        assert!(sim.hit(90_001).allowed);
    }

    #[test]
    fn every_limit_of_a_spec_applies_and_refusals_are_not_counted() {
        let mut sim = Simulated::new("3/second;5/minute");
        let mut allowed = 0;
        for second in 0..10 {
            for i in 0..4 {
                if sim.hit(second * 1_000 + i).allowed {
                    allowed += 1;
                }
            }
        }
        assert_eq!(allowed, 5, "the minute limit caps the total");
        let refused = sim.hit(10_500);
        assert_eq!(
            refused.limit,
            RateLimit {
                count: 5,
                period_secs: 60
            }
        );
    }

    #[test]
    fn the_tightest_allowance_is_reported() {
        let mut sim = Simulated::new("100/hour;3/minute");
        let decision = sim.hit(0);
        assert_eq!((decision.limit.count, decision.remaining), (3, 2));
    }
}
