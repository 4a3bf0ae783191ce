//! The Prometheus HTTP API: range queries, and the raw samples of a range selector, with
//! authentication, timeouts and bounded retries.
//!
//! One idea per file: this one holds the client (settings, requests, retries); `answer`
//! reads what comes back, `transport` keeps redirects and secrets in check, `error` says
//! what failed and what to do.

mod answer;
mod error;
#[cfg(test)]
mod tests;
mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tracing::{debug, warn};

use crate::provenance::Provenance;
use crate::scope::Scope;

use answer::{DeviceMillis, Millis, Reading, Seconds};
use transport::{
    CrossOrigin, error_chain, find_cross_origin, parse_retry_after, same_origin, scrub,
};

pub use answer::Answer;
pub use error::{PrometheusError, Result};
pub use transport::{MAX_RETRY_AFTER, redacted};

/// How to reach Prometheus.
#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    pub url: reqwest::Url,
    pub bearer_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub retries: u32,
    pub allow_partial_data: bool,
    /// Largest answer read, in bytes.
    pub max_response_bytes: usize,
    /// Parameters added to every query (Thanos' `dedup`, `partial_response`, ...).
    pub extra_params: Vec<(String, String)>,
    /// Label matchers added to every selector of every query (`--prometheus-selector`).
    pub scope: Scope,
    /// Per source, the matchers of the platform's exporter, added to every selector of its
    /// metrics ([`crate::provenance`]).
    pub provenance: Provenance,
}

/// Which series a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// This cluster's series of the platform's exporters: everything billed.
    Believed,
    /// This cluster's series of every job: only to name the jobs that are not believed.
    EveryJob,
    /// The whole store: only to name the cluster label's values.
    Unscoped,
}

/// One series of a range query: its labels and `(unix seconds, value)` points; of a
/// [`SampleQuery`], `(unix milliseconds, value)` samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(i64, f64)>,
}

/// A range query: expression, evaluation times `start..=end` every `step`.
#[derive(Debug, Clone)]
pub struct RangeQuery<'a> {
    /// Short name for errors and logs, e.g. "cpu".
    pub what: &'a str,
    pub expr: &'a str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub step: Duration,
}

impl<'a> RangeQuery<'a> {
    /// One evaluation, at `at`: an instant query sent as a range query (its answer has the
    /// same shape as every other range answer, and the engines' range path applies the same
    /// limits).
    pub fn at(what: &'a str, expr: &'a str, at: DateTime<Utc>) -> Self {
        RangeQuery {
            what,
            expr,
            start: at,
            end: at,
            step: Duration::from_secs(3600),
        }
    }

    fn range(&self) -> String {
        format!(
            "evaluation times {}..={} step {}s",
            crate::window::rfc3339(self.start),
            crate::window::rfc3339(self.end),
            self.step.as_secs()
        )
    }
}

/// The raw samples a range selector (`expr`, e.g. `x[2h] offset 1ms`) selects at `at`: an
/// instant query whose answer is the samples themselves, with their own times.
#[derive(Debug, Clone)]
pub struct SampleQuery<'a> {
    /// Short name for errors and logs, e.g. "cpu samples".
    pub what: &'a str,
    pub expr: &'a str,
    pub at: DateTime<Utc>,
}

/// One request as sent: the API path, its parameters besides the query, and how errors name
/// what it asked for.
struct Request<'a> {
    what: &'a str,
    expr: &'a str,
    endpoint: &'a reqwest::Url,
    params: Vec<(&'static str, String)>,
    range: String,
}

/// A Prometheus API client for one run.
pub struct Prometheus {
    http: reqwest::Client,
    config: PrometheusSettings,
    /// `/api/v1/query_range` and `/api/v1/query` under the configured root.
    range_endpoint: reqwest::Url,
    instant_endpoint: reqwest::Url,
    stats: Stats,
}

/// Requests this client sent, and the time they took (for the run's report).
#[derive(Default)]
struct Stats {
    requests: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

fn read_file(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| PrometheusError::File {
        what,
        path: path.display().to_string(),
        source,
    })
}

impl Prometheus {
    /// Build the client: reads the CA, the client certificate and the bearer token now, so that
    /// a missing file fails before any query.
    pub fn new(config: &PrometheusSettings) -> Result<Self> {
        // Billing data comes from the configured origin only: same-origin redirects (e.g. a
        // path moved behind a proxy) are followed, a redirect elsewhere (another host, or https
        // to http) stops the query with an error that names it.
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let from = attempt.previous()[0].clone();
            if attempt.previous().len() > 5 {
                attempt.error(CrossOrigin("more than 5 redirects".into()))
            } else if same_origin(&from, attempt.url()) {
                attempt.follow()
            } else {
                let to = redacted(attempt.url());
                attempt.error(CrossOrigin(to))
            }
        });
        let mut builder = reqwest::Client::builder()
            .redirect(policy)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("consumption-metrics/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &config.ca_file {
            let pem = read_file("--prometheus-ca", ca)?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| PrometheusError::Pem {
                what: "--prometheus-ca",
                path: ca.display().to_string(),
                reason: e.to_string(),
            })?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some((cert, key)) = &config.client_cert {
            let cert_pem = read_file("--prometheus-cert", cert)?;
            let key_pem = read_file("--prometheus-key", key)?;
            // reqwest says only "builder error" of a key that does not match, and OpenSSL
            // would prompt for an encrypted one: both are checked here first.
            let pem_err = |what: &'static str, path: &std::path::Path| {
                let path = path.display().to_string();
                move |reason: String| PrometheusError::Pem { what, path, reason }
            };
            let parsed =
                crate::pem::private_key(&key_pem).map_err(pem_err("--prometheus-key", key))?;
            if !crate::pem::key_matches(&cert_pem, &parsed)
                .map_err(pem_err("--prometheus-cert", cert))?
            {
                return Err(PrometheusError::Pem {
                    what: "--prometheus-key",
                    path: key.display().to_string(),
                    reason: format!(
                        "it does not belong to --prometheus-cert {}; mount the key issued with \
                         that certificate",
                        cert.display()
                    ),
                });
            }
            let identity = reqwest::Identity::from_pkcs8_pem(&cert_pem, &key_pem).map_err(|e| {
                PrometheusError::Pem {
                    what: "--prometheus-cert/--prometheus-key",
                    path: format!("{} + {}", cert.display(), key.display()),
                    reason: format!("{e} (the key must be PKCS#8 PEM and match the certificate)"),
                }
            })?;
            builder = builder.identity(identity);
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            // Validated in config; a failure here would be a bug, so report it rather than panic.
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| PrometheusError::Client(format!("header {name}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| PrometheusError::Client(format!("header value: {e}")))?;
            headers.insert(name, value);
        }
        let http = builder
            .default_headers(headers)
            .build()
            .map_err(|e| PrometheusError::Client(e.to_string()))?;
        let endpoint = |api: &str| {
            let mut endpoint = config.url.clone();
            let path = endpoint.path().trim_end_matches('/').to_string();
            endpoint.set_path(&format!("{path}/api/v1/{api}"));
            endpoint
        };
        let prometheus = Self {
            http,
            config: config.clone(),
            range_endpoint: endpoint("query_range"),
            instant_endpoint: endpoint("query"),
            stats: Stats::default(),
        };
        prometheus.bearer_token()?;
        Ok(prometheus)
    }

    /// The bearer token, re-read each time so a rotated token is picked up.
    fn bearer_token(&self) -> Result<Option<String>> {
        match &self.config.bearer_token_file {
            None => Ok(None),
            Some(path) => {
                let raw = read_file("--prometheus-bearer-token-file", path)?;
                let bad = |reason| PrometheusError::Token {
                    path: path.display().to_string(),
                    reason,
                };
                let token = std::str::from_utf8(&raw)
                    .map_err(|_| bad("it is not UTF-8 text"))?
                    .trim();
                if token.is_empty() {
                    return Err(bad("it is empty"));
                }
                if token.contains(['\n', '\r']) {
                    return Err(bad("it has more than one line"));
                }
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| bad("it has characters an HTTP header cannot carry"))?;
                Ok(Some(token.to_string()))
            }
        }
    }

    /// Run a range query, retrying timeouts, 429 and 5xx up to the configured number of times,
    /// after an exponential backoff or the server's `Retry-After`, whichever is longer. A
    /// `Retry-After` beyond [`MAX_RETRY_AFTER`] is not waited for: the run stops and the next
    /// one retries.
    pub async fn query_range(&self, q: &RangeQuery<'_>) -> Result<Vec<Series>> {
        self.send::<Seconds>(&self.range_request(q)).await
    }

    /// The request of a range query.
    fn range_request<'a>(&'a self, q: &RangeQuery<'a>) -> Request<'a> {
        Request {
            what: q.what,
            expr: q.expr,
            endpoint: &self.range_endpoint,
            params: vec![
                ("start", q.start.timestamp().to_string()),
                ("end", q.end.timestamp().to_string()),
                ("step", format!("{}s", q.step.as_secs())),
            ],
            range: q.range(),
        }
    }

    /// The raw samples of a range selector, as [`Series`] of `(unix milliseconds, value)`
    /// samples, with the retries of [`Prometheus::query_range`].
    pub async fn query_samples(&self, q: &SampleQuery<'_>) -> Result<Vec<Series>> {
        self.send::<Millis>(&self.samples_request(q)).await
    }

    /// The request of a raw-sample read: an instant query of a range selector.
    fn samples_request<'a>(&'a self, q: &SampleQuery<'a>) -> Request<'a> {
        Request {
            what: q.what,
            expr: q.expr,
            endpoint: &self.instant_endpoint,
            params: vec![("time", q.at.timestamp().to_string())],
            range: format!("samples at {}", crate::window::rfc3339(q.at)),
        }
    }

    /// [`Prometheus::query_samples`] keeping the labels of dcgm-exporter's device series
    /// ([`crate::gpu::dcgm`]) instead of a container's.
    pub async fn query_device_samples(&self, q: &SampleQuery<'_>) -> Result<Vec<Series>> {
        self.send::<DeviceMillis>(&self.samples_request(q)).await
    }

    /// [`Prometheus::query_range`] outside `--prometheus-selector`: only for a diagnosis
    /// when the selector matches nothing (which values the cluster label does have), never
    /// for anything billed.
    pub async fn query_range_unscoped(&self, q: &RangeQuery<'_>) -> Result<Vec<Series>> {
        self.send_as::<Seconds>(&self.range_request(q), Reach::Unscoped)
            .await
    }

    /// [`Prometheus::query_range`] within `--prometheus-selector` but over every job, not only
    /// the platform's exporters ([`crate::provenance`]): only to name the jobs whose series
    /// are not believed, never for anything billed.
    pub async fn query_range_every_job(&self, q: &RangeQuery<'_>) -> Result<Vec<Series>> {
        self.send_as::<Seconds>(&self.range_request(q), Reach::EveryJob)
            .await
    }

    /// The largest answer read (`--prometheus-max-response-bytes`).
    pub fn max_response_bytes(&self) -> usize {
        self.config.max_response_bytes
    }

    /// The provenance matchers of the job's sources.
    pub fn provenance(&self) -> &Provenance {
        &self.config.provenance
    }

    /// Send `q` within the scope, retrying as [`Prometheus::query_range`] says. Every query
    /// the job sends passes here: the one place the scope is added ([`Scope::apply`]).
    async fn send<T: Reading>(&self, q: &Request<'_>) -> Result<Vec<Series>> {
        self.send_as::<T>(q, Reach::Believed).await
    }

    /// [`Prometheus::send`], reading as far as `reach` says.
    async fn send_as<T: Reading>(&self, q: &Request<'_>, reach: Reach) -> Result<Vec<Series>> {
        let scoped = match reach {
            Reach::Believed => self
                .config
                .scope
                .apply_with(q.expr, &self.config.provenance),
            Reach::EveryJob => self.config.scope.apply(q.expr),
            Reach::Unscoped => q.expr.to_string(),
        };
        let q = &Request {
            what: q.what,
            expr: &scoped,
            endpoint: q.endpoint,
            params: q.params.clone(),
            range: q.range.clone(),
        };
        let mut attempt = 0;
        loop {
            match self.query_once::<T>(q).await {
                Ok(series) => return Ok(series),
                Err(e) if e.is_retryable() && attempt < self.config.retries => {
                    let asked = match &e {
                        PrometheusError::Status { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    if asked.is_some_and(|d| d > MAX_RETRY_AFTER) {
                        return Err(e);
                    }
                    let backoff =
                        Duration::from_secs(1u64 << attempt.min(5)).max(asked.unwrap_or_default());
                    warn!(query = q.what, attempt, error = %e, ?backoff, "query failed, retrying");
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// What this client sends that must never be logged: the bearer token, the URL's
    /// password and its Basic form, extra header values.
    fn secrets(&self, token: Option<&str>) -> Vec<String> {
        let url = &self.config.url;
        let mut secrets: Vec<String> = token.map(str::to_string).into_iter().collect();
        if let Some(password) = url.password() {
            secrets.push(password.to_string());
            let basic = format!("{}:{password}", url.username());
            secrets.push(openssl::base64::encode_block(basic.as_bytes()));
            // The URL keeps percent-encoding; reqwest sends (and a server may echo) the
            // decoded form.
            let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy();
            secrets.push(decoded.to_string());
            let basic = format!("{}:{decoded}", url.username());
            secrets.push(openssl::base64::encode_block(basic.as_bytes()));
        }
        secrets.extend(self.config.headers.iter().map(|(_, v)| v.clone()));
        // Query values of the URL (a token), as written and as decoded.
        if let Some(query) = url.query() {
            secrets.extend(
                query
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .map(|(_, v)| v.to_string()),
            );
            secrets.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
        }
        secrets
    }

    /// Whether `--prometheus-selector` scopes every query.
    pub fn is_scoped(&self) -> bool {
        !self.config.scope.is_empty()
    }

    /// `--prometheus-selector` as it is added to every selector.
    pub fn scope_text(&self) -> String {
        self.config.scope.to_string()
    }

    /// Requests sent so far (retries included) and the time spent waiting for them.
    pub fn requests(&self) -> (u64, Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.stats.requests.load(Relaxed),
            Duration::from_nanos(self.stats.nanos.load(Relaxed)),
        )
    }

    async fn query_once<T: Reading>(&self, q: &Request<'_>) -> Result<Vec<Series>> {
        use std::sync::atomic::Ordering::Relaxed;
        let started = std::time::Instant::now();
        let result = self.query_timed::<T>(q).await;
        self.stats.requests.fetch_add(1, Relaxed);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stats.nanos.fetch_add(nanos, Relaxed);
        result
    }

    async fn query_timed<T: Reading>(&self, q: &Request<'_>) -> Result<Vec<Series>> {
        let url = redacted(&self.config.url);
        let range = q.range.clone();
        let mut form = vec![("query", q.expr.to_string())];
        form.extend(q.params.iter().map(|(k, v)| (*k, v.clone())));
        form.push((
            "timeout",
            format!("{}s", self.config.timeout.as_secs().max(1)),
        ));
        form.extend(
            self.config
                .extra_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone())),
        );
        let mut request = self.http.post(q.endpoint.clone()).form(&form);
        let token = self.bearer_token()?;
        if let Some(token) = &token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let secrets = self.secrets(token.as_deref());
        debug!(query = q.what, expr = q.expr, %range, "querying Prometheus");
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                PrometheusError::Timeout {
                    url: url.clone(),
                    what: q.what.into(),
                    range: range.clone(),
                    timeout: self.config.timeout,
                }
            } else if let Some(to) = find_cross_origin(&e) {
                PrometheusError::Redirect {
                    url: url.clone(),
                    what: q.what.into(),
                    range: range.clone(),
                    to,
                }
            } else {
                // without_url: reqwest's message would print the URL with its password.
                PrometheusError::Unreachable {
                    url: url.clone(),
                    what: q.what.into(),
                    range: range.clone(),
                    reason: scrub(error_chain(&e.without_url()), &secrets),
                }
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_string();
        let too_large = || PrometheusError::TooLarge {
            url: url.clone(),
            what: q.what.into(),
            range: range.clone(),
            limit_mib: self.config.max_response_bytes / (1024 * 1024),
        };
        let limit = self.config.max_response_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        // Read chunk by chunk, so that an answer over the limit is refused while it arrives,
        // not after it filled the memory.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let answer = Answer {
            url: &url,
            what: q.what,
            range: &range,
            status: status.as_u16(),
            content_type: &content_type,
            retry_after,
            secrets: &secrets,
            allow_partial_data: self.config.allow_partial_data,
        };
        answer.interpret_in::<T>(&body)
    }
}
