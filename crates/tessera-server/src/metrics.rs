//! Prometheus metrics (S10, B9, B11), in the Prometheus text exposition format.
//!
//! One registry per application instance (no global recorder), so tests can run many apps in
//! one process and each reads its own numbers. Counters are bumped where the events happen;
//! gauges that mirror state (live sessions, hashing queue, backend health) are refreshed when
//! `/metrics` is scraped.

use std::collections::HashMap;
use std::sync::RwLock;

use tessera_core::store::StorageFault;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The `route` label values of `auth_rate_limited_total`: the rate-limit buckets.
pub const RATE_LIMITED_ROUTES: [&str; 7] = [
    "login",
    "login_account",
    "register",
    "api",
    "quota",
    "gateway",
    "mail_ip",
];

/// The `kind` label values of `tessera_gateway_upstream_errors_total`.
pub const GATEWAY_ERROR_KINDS: [&str; 5] = ["connect", "timeout", "broken", "body_too_large", "idle"];

/// The `endpoint` label values of `tessera_forward_auth_total` (G2).
pub const FORWARD_AUTH_ENDPOINTS: [&str; 3] = ["forward", "nginx", "envoy"];
/// The `outcome` label values of `tessera_forward_auth_total` (G2).
pub const FORWARD_AUTH_OUTCOMES: [&str; 8] = [
    "allowed",
    "unauthenticated",
    "redirected",
    "forbidden",
    "untrusted_proxy",
    "bad_request",
    "rate_limited",
    "error",
];

/// Every metric Tessera exports.
pub struct Metrics {
    registry: Registry,
    /// `auth_login_attempts_total{status="success|failure"}`.
    pub login_attempts: IntCounterVec,
    /// `auth_login_duration_seconds`: the whole login, hashing included.
    pub login_duration: Histogram,
    /// `auth_active_tokens`: live, unrevoked sessions (refreshed at scrape).
    pub active_tokens: IntGauge,
    /// `auth_token_refresh_total`.
    pub token_refresh: IntCounter,
    /// `auth_token_verifications_total{result="valid|expired|invalid|revoked"}`.
    pub token_verifications: IntCounterVec,
    /// `auth_rate_limited_total{route}`.
    pub rate_limited: IntCounterVec,
    /// `auth_api_key_verifications_total{result="valid|malformed|invalid|revoked"}` (G3).
    pub api_key_verifications: IntCounterVec,
    /// `auth_api_key_events_total{event="created|rotated|revoked"}` (G3).
    pub api_key_events: IntCounterVec,
    /// `auth_refresh_reuse_detected_total`.
    pub refresh_reuse: IntCounter,
    /// `auth_csrf_failures_total`.
    pub csrf_failures: IntCounter,
    /// `auth_password_hash_queue_depth` (refreshed at scrape).
    pub hash_queue_depth: IntGauge,
    /// `auth_password_hash_queue_capacity`: HASH_QUEUE_SIZE (refreshed at scrape), so alerts
    /// can compare the depth with it.
    pub hash_queue_capacity: IntGauge,
    /// `auth_password_hash_rejected_total`: logins/registrations shed with 503.
    pub hash_rejected: IntCounter,
    /// `tessera_backend_up{backend="database|redis"}` (refreshed at scrape).
    pub backend_up: IntGaugeVec,
    /// `tessera_backend_outages_total{backend}`: times a backend went down.
    pub backend_outages: IntGaugeVec,
    /// `tessera_storage_errors_total{kind="full|read_only|io"}`: requests answered 503
    /// `storage_unavailable` because the database could not store data.
    pub storage_errors: IntCounterVec,
    /// `http_requests_total{method,route,status}`; `route` is the matched route, never the raw path.
    pub http_requests: IntCounterVec,
    /// `http_request_duration_seconds{method,route,status}`.
    pub http_duration: HistogramVec,
    /// `tessera_gateway_requests_total{upstream,status}`: requests the gateway answered (G1);
    /// `status` is the status class (`2xx`, ..., from the upstream or the gateway's refusal).
    pub gateway_requests: IntCounterVec,
    /// `tessera_gateway_upstream_errors_total{upstream,kind="connect|timeout|broken|body_too_large"}`.
    pub gateway_errors: IntCounterVec,
    /// `tessera_gateway_upstream_seconds{upstream}`: time to the upstream's response headers.
    pub gateway_duration: HistogramVec,
    /// `tessera_gateway_open_streams{upstream}`: proxied responses still streaming.
    pub gateway_open_streams: IntGaugeVec,
    /// `tessera_forward_auth_total{endpoint,outcome}`: forward-auth answers (G2), by endpoint
    /// ([`FORWARD_AUTH_ENDPOINTS`]) and outcome ([`FORWARD_AUTH_OUTCOMES`]).
    pub forward_auth: IntCounterVec,
    /// `tessera_mail_sent_total{kind}`: mails handed to the SMTP server (or written to a file).
    pub mail_sent: IntCounterVec,
    /// `tessera_mail_send_failures_total{kind}`: failed send attempts (each retry counts).
    pub mail_failures: IntCounterVec,
    /// `tessera_mail_dropped_total{reason}`: mails never sent ([`MAIL_DROP_REASONS`]).
    pub mail_dropped: IntCounterVec,
    /// `tessera_mail_queue`: mails waiting to be sent or retried.
    pub mail_queue: IntGauge,
    /// `tessera_email_tokens_total{purpose,result}`: one-time mail tokens issued, redeemed,
    /// refused.
    pub email_tokens: IntCounterVec,
    /// `tessera_mfa_total{method,result}`: second-factor checks (C3) at login and enrolment
    /// ([`MFA_METHODS`] x [`MFA_RESULTS`]).
    pub mfa: IntCounterVec,
    /// The children of `http_requests_total` and `http_request_duration_seconds` already
    /// resolved, by route, method and status (see [`Metrics::http_series`]).
    http_series: RwLock<HashMap<Box<str>, Vec<HttpSeries>>>,
    /// `auth_token_verifications_total{result="valid"}`, resolved once: it is bumped on every
    /// authenticated request.
    pub token_valid: IntCounter,
}

/// The two series of one (method, route, status) of the HTTP request metrics.
#[derive(Clone)]
pub struct HttpSeries {
    method: &'static str,
    status: u16,
    /// `http_requests_total{method,route,status}`.
    pub requests: IntCounter,
    /// `http_request_duration_seconds{method,route,status}`.
    pub duration: Histogram,
}

/// The `kind` label values of the mail metrics.
pub const MAIL_KINDS: [&str; 4] = ["verify_email", "change_email", "email_changed", "reset_password"];
/// The `reason` label values of `tessera_mail_dropped_total`: the queue was full, every retry
/// failed, or the address's send limit (RATE_LIMIT_MAIL_ADDRESS) was reached.
pub const MAIL_DROP_REASONS: [&str; 3] = ["queue_full", "gave_up", "limited"];
/// The `method` label values of `tessera_mfa_total`.
pub const MFA_METHODS: [&str; 2] = ["totp", "recovery_code"];
/// The `result` label values of `tessera_mfa_total`: accepted, wrong, a replayed TOTP step, or a
/// challenge token that was unknown, used, expired or out of attempts.
pub const MFA_RESULTS: [&str; 4] = ["success", "failure", "replay", "invalid_token"];
/// The `result` label values of `tessera_email_tokens_total`.
pub const EMAIL_TOKEN_RESULTS: [&str; 3] = ["issued", "redeemed", "invalid"];

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> prometheus::Result<T> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// A fresh registry with every metric, plus process metrics (CPU, memory, file descriptors).
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let latency_buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let login_buckets = vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let token_verifications = register(
            &registry,
            IntCounterVec::new(
                Opts::new("auth_token_verifications_total", "Access-token checks by result."),
                &["result"],
            )?,
        )?;
        let token_valid = token_verifications.with_label_values(&["valid"]);
        let metrics = Metrics {
            login_attempts: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("auth_login_attempts_total", "Login attempts by outcome."),
                    &["status"],
                )?,
            )?,
            login_duration: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "auth_login_duration_seconds",
                        "Time to answer a login, hashing included.",
                    )
                    .buckets(login_buckets),
                )?,
            )?,
            active_tokens: register(
                &registry,
                IntGauge::new(
                    "auth_active_tokens",
                    "Live, unrevoked sessions (refresh-token families).",
                )?,
            )?,
            token_refresh: register(
                &registry,
                IntCounter::new("auth_token_refresh_total", "Successful token refreshes.")?,
            )?,
            token_verifications: token_verifications.clone(),
            api_key_verifications: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("auth_api_key_verifications_total", "API-key checks by result."),
                    &["result"],
                )?,
            )?,
            api_key_events: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("auth_api_key_events_total", "API keys created, rotated and revoked."),
                    &["event"],
                )?,
            )?,
            rate_limited: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("auth_rate_limited_total", "Requests refused by a rate limit."),
                    &["route"],
                )?,
            )?,
            refresh_reuse: register(
                &registry,
                IntCounter::new(
                    "auth_refresh_reuse_detected_total",
                    "Spent refresh tokens presented again (session families revoked).",
                )?,
            )?,
            csrf_failures: register(
                &registry,
                IntCounter::new(
                    "auth_csrf_failures_total",
                    "Cookie-authenticated requests refused for CSRF.",
                )?,
            )?,
            hash_queue_depth: register(
                &registry,
                IntGauge::new(
                    "auth_password_hash_queue_depth",
                    "Password hashing jobs waiting for a worker.",
                )?,
            )?,
            hash_queue_capacity: register(
                &registry,
                IntGauge::new(
                    "auth_password_hash_queue_capacity",
                    "Password hashing jobs that may wait before requests are shed (HASH_QUEUE_SIZE).",
                )?,
            )?,
            hash_rejected: register(
                &registry,
                IntCounter::new(
                    "auth_password_hash_rejected_total",
                    "Requests shed with 503 because the hashing queue was full.",
                )?,
            )?,
            backend_up: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("tessera_backend_up", "Whether a backend answers (1) or not (0)."),
                    &["backend"],
                )?,
            )?,
            backend_outages: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("tessera_backend_outages", "Times a backend was found down since start."),
                    &["backend"],
                )?,
            )?,
            storage_errors: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_storage_errors_total",
                        "Requests refused because the database could not store data, by kind.",
                    ),
                    &["kind"],
                )?,
            )?,
            gateway_requests: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_gateway_requests_total",
                        "Requests the gateway answered, by upstream and status class.",
                    ),
                    &["upstream", "status"],
                )?,
            )?,
            gateway_errors: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_gateway_upstream_errors_total",
                        "Upstream failures seen by the gateway, by upstream and kind.",
                    ),
                    &["upstream", "kind"],
                )?,
            )?,
            gateway_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "tessera_gateway_upstream_seconds",
                        "Time from sending a request upstream to its response headers.",
                    )
                    .buckets(latency_buckets.clone()),
                    &["upstream"],
                )?,
            )?,
            gateway_open_streams: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tessera_gateway_open_streams",
                        "Proxied responses whose body is still streaming, by upstream.",
                    ),
                    &["upstream"],
                )?,
            )?,
            http_requests: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "http_requests_total",
                        "HTTP requests by method, matched route and status.",
                    ),
                    &["method", "route", "status"],
                )?,
            )?,
            http_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("http_request_duration_seconds", "HTTP request latency.")
                        .buckets(latency_buckets),
                    &["method", "route", "status"],
                )?,
            )?,
            forward_auth: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_forward_auth_total",
                        "Forward-auth answers to reverse proxies, by endpoint and outcome.",
                    ),
                    &["endpoint", "outcome"],
                )?,
            )?,
            mail_sent: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_mail_sent_total",
                        "Mails sent (or written to files without SMTP_URL), by kind.",
                    ),
                    &["kind"],
                )?,
            )?,
            mail_failures: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_mail_send_failures_total",
                        "Failed mail send attempts, by kind; each retry counts.",
                    ),
                    &["kind"],
                )?,
            )?,
            mail_dropped: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_mail_dropped_total",
                        "Mails never sent: queue full, every retry failed, or the address's send limit reached.",
                    ),
                    &["reason"],
                )?,
            )?,
            mail_queue: register(
                &registry,
                IntGauge::new("tessera_mail_queue", "Mails waiting to be sent or retried.")?,
            )?,
            email_tokens: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_email_tokens_total",
                        "One-time mail tokens (verification, email change, password reset) by purpose and result.",
                    ),
                    &["purpose", "result"],
                )?,
            )?,
            mfa: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_mfa_total",
                        "Second-factor checks (TOTP, recovery codes) by method and result.",
                    ),
                    &["method", "result"],
                )?,
            )?,
            http_series: RwLock::new(HashMap::new()),
            token_valid,
            registry,
        };
        metrics.declare_label_values();
        Ok(metrics)
    }

    /// Creates every known label combination at zero, so a series exists before its first
    /// event: `rate()` and `absent()` in alert rules see 0, not "no data".
    fn declare_label_values(&self) {
        for status in ["success", "failure"] {
            self.login_attempts.with_label_values(&[status]);
        }
        for result in ["valid", "expired", "invalid", "revoked"] {
            self.token_verifications.with_label_values(&[result]);
        }
        for result in ["valid", "malformed", "invalid", "revoked"] {
            self.api_key_verifications.with_label_values(&[result]);
        }
        for event in ["created", "rotated", "revoked"] {
            self.api_key_events.with_label_values(&[event]);
        }
        for route in RATE_LIMITED_ROUTES {
            self.rate_limited.with_label_values(&[route]);
        }
        for fault in StorageFault::ALL {
            self.storage_errors.with_label_values(&[fault.as_str()]);
        }
        self.backend_up.with_label_values(&["database"]).set(1);
        for kind in MAIL_KINDS {
            self.mail_sent.with_label_values(&[kind]);
            self.mail_failures.with_label_values(&[kind]);
        }
        for reason in MAIL_DROP_REASONS {
            self.mail_dropped.with_label_values(&[reason]);
        }
        for purpose in tessera_core::store::EmailTokenPurpose::ALL {
            for result in EMAIL_TOKEN_RESULTS {
                self.email_tokens.with_label_values(&[purpose.as_str(), result]);
            }
        }
        for method in MFA_METHODS {
            for result in MFA_RESULTS {
                self.mfa.with_label_values(&[method, result]);
            }
        }
        for endpoint in FORWARD_AUTH_ENDPOINTS {
            for outcome in FORWARD_AUTH_OUTCOMES {
                self.forward_auth.with_label_values(&[endpoint, outcome]);
            }
        }
    }

    /// Creates the series of a gateway upstream at zero (errors by kind, open streams), so
    /// alerts on it see 0 rather than "no data".
    pub fn register_upstream(&self, name: &str) {
        for kind in GATEWAY_ERROR_KINDS {
            self.gateway_errors.with_label_values(&[name, kind]);
        }
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            self.gateway_requests.with_label_values(&[name, class]);
        }
        self.gateway_duration.with_label_values(&[name]);
        self.gateway_open_streams.with_label_values(&[name]);
    }

    /// The HTTP request series of `method` (a label value: a standard method or `other`),
    /// `route` (the matched route or `unmatched`) and `status`. Resolved through the vectors
    /// (hashing the label values, a lock) once per combination, then read from a small map by
    /// route: one read lock and a short scan per request. Routes, the method labels and
    /// status codes are finite sets, so the map is bounded.
    pub fn http_series(&self, method: &'static str, route: &str, status: u16) -> HttpSeries {
        let find = |series: &Vec<HttpSeries>| {
            series
                .iter()
                .find(|s| s.status == status && s.method == method)
                .cloned()
        };
        if let Ok(map) = self.http_series.read()
            && let Some(found) = map.get(route).and_then(find)
        {
            return found;
        }
        let status_text = status.to_string();
        let labels = [method, route, status_text.as_str()];
        let series = HttpSeries {
            method,
            status,
            requests: self.http_requests.with_label_values(&labels),
            duration: self.http_duration.with_label_values(&labels),
        };
        if let Ok(mut map) = self.http_series.write() {
            let entry = map.entry(route.into()).or_default();
            if find(entry).is_none() {
                entry.push(series.clone());
            }
        }
        series
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_renders_with_help_and_type() {
        let metrics = Metrics::new().unwrap();
        metrics.login_attempts.with_label_values(&["success"]).inc();
        metrics
            .http_requests
            .with_label_values(&["GET", "/profile", "200"])
            .inc();
        metrics.backend_up.with_label_values(&["database"]).set(1);
        let text = metrics.render();
        for family in [
            "auth_login_attempts_total",
            "auth_active_tokens",
            "auth_token_refresh_total",
            "http_requests_total",
        ] {
            assert!(text.contains(&format!("# TYPE {family}")), "{family} missing:\n{text}");
        }
        assert!(text.contains("auth_login_attempts_total{status=\"success\"} 1"));
    }

    #[test]
    fn http_series_are_the_vectors_children() {
        let metrics = Metrics::new().unwrap();
        metrics.http_series("GET", "/profile", 200).requests.inc();
        metrics.http_series("GET", "/profile", 200).requests.inc();
        metrics.http_series("POST", "/profile", 200).requests.inc();
        metrics.http_series("GET", "/profile", 404).duration.observe(0.001);
        let get_ok = metrics.http_requests.with_label_values(&["GET", "/profile", "200"]);
        assert_eq!(get_ok.get(), 2);
        let post_ok = metrics.http_requests.with_label_values(&["POST", "/profile", "200"]);
        assert_eq!(post_ok.get(), 1);
        let text = metrics.render();
        assert!(
            text.contains("http_request_duration_seconds_count{method=\"GET\",route=\"/profile\",status=\"404\"} 1")
        );
        metrics.token_valid.inc();
        assert!(text.contains("auth_token_verifications_total{result=\"valid\"} 0"));
        assert!(
            metrics
                .render()
                .contains("auth_token_verifications_total{result=\"valid\"} 1")
        );
    }

    #[test]
    fn two_instances_do_not_share_numbers() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        a.token_refresh.inc();
        assert!(a.render().contains("auth_token_refresh_total 1"));
        assert!(b.render().contains("auth_token_refresh_total 0"));
    }
}
