//! Why a query failed, each error naming the query, its range and what to do.

use std::time::Duration;

/// What went wrong talking to Prometheus. Each variant names the query (`what`) and the range.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("could not read {what} {path}: {source}; check the file is mounted and readable")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("could not use {what} {path}: {reason}; it must be a PEM file")]
    Pem {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error(
        "the bearer token in {path} cannot be sent: {reason}; the file must hold one token on \
         one line (a service-account token file does)"
    )]
    Token { path: String, reason: &'static str },
    #[error(
        "the answer of {url} to the {what} query for {range} is JSON but cut off or malformed \
         ({reason}); the connection may have been cut or a proxy limits answer sizes: query \
         fewer hours at a time (--hours-per-query) if it happens again"
    )]
    BadJson {
        url: String,
        what: String,
        range: String,
        reason: String,
    },
    #[error(
        "the answer of {url} to the {what} query for {range} is larger than \
         --prometheus-max-response-mib ({limit_mib} MiB); query fewer hours at a time \
         (--hours-per-query), or raise the limit together with the pod's memory limit"
    )]
    TooLarge {
        url: String,
        what: String,
        range: String,
        limit_mib: usize,
    },
    #[error("could not build the HTTP client for Prometheus: {0}")]
    Client(String),
    #[error(
        "could not reach Prometheus at {url} while querying {what} for {range}: {reason}; check \
         --prometheus-url and that Prometheus is up and reachable"
    )]
    Unreachable {
        url: String,
        what: String,
        range: String,
        reason: String,
    },
    #[error(
        "Prometheus at {url} redirected the {what} query for {range} to {to}, another origin; \
         billing data is read only from the configured address: set --prometheus-url to the \
         address you trust"
    )]
    Redirect {
        url: String,
        what: String,
        range: String,
        to: String,
    },
    #[error(
        "Prometheus at {url} did not answer the {what} query for {range} within {timeout:?}; \
         raise --prometheus-timeout or query fewer hours (--hours-per-query)"
    )]
    Timeout {
        url: String,
        what: String,
        range: String,
        timeout: Duration,
    },
    #[error(
        "Prometheus at {url} answered the {what} query for {range} with HTTP {status}: \
         {detail}{hint}{}",
        retry_after.map(|d| format!(" (it asked to retry after {}s)", d.as_secs())).unwrap_or_default()
    )]
    Status {
        url: String,
        what: String,
        range: String,
        status: u16,
        detail: String,
        hint: &'static str,
        /// How long the server asked us to wait (`Retry-After` on 429/503).
        retry_after: Option<Duration>,
    },
    #[error(
        "the answer of {url} to the {what} query for {range} is not Prometheus JSON \
         ({content_type}, begins {snippet:?}); is --prometheus-url the root of the Prometheus \
         API (without /api/v1)?"
    )]
    NotJson {
        url: String,
        what: String,
        range: String,
        content_type: String,
        snippet: String,
    },
    #[error("Prometheus rejected the {what} query for {range}: {error_type}: {error}")]
    Query {
        what: String,
        range: String,
        error_type: String,
        error: String,
    },
    #[error(
        "Prometheus answered the {what} query for {range} with partial data ({warnings}); \
         nothing was billed for these hours; retry later, or pass --allow-partial-data to accept"
    )]
    Partial {
        what: String,
        range: String,
        warnings: String,
    },
    #[error(
        "the answer of {url} to the {what} query for {range} is JSON but not a Prometheus \
         answer to it ({reason}); nothing was billed for these hours. A proxy or an engine \
         that changes the API's answers is in front of Prometheus: check --prometheus-url"
    )]
    Shape {
        url: String,
        what: String,
        range: String,
        reason: String,
    },
    #[error("the {what} query for {range} returned {result_type} data, expected a matrix")]
    ResultType {
        what: String,
        range: String,
        result_type: String,
    },
    #[error("the {what} query for {range} returned an unreadable sample {value:?} at {ts}")]
    Sample {
        what: String,
        range: String,
        value: String,
        ts: f64,
    },
}

impl PrometheusError {
    /// Whether trying again later may succeed (the run is stopped either way).
    pub fn is_retryable(&self) -> bool {
        match self {
            PrometheusError::Unreachable { .. }
            | PrometheusError::Timeout { .. }
            | PrometheusError::BadJson { .. } => true,
            PrometheusError::Status { status, .. } => *status == 429 || *status >= 500,
            PrometheusError::Partial { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = PrometheusError> = std::result::Result<T, E>;
