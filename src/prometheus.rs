//! The Prometheus HTTP API: range queries, and the raw samples of a range selector, with
//! authentication, timeouts and bounded retries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use tracing::{debug, warn};

use crate::scope::Scope;

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
}

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

impl RangeQuery<'_> {
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

/// How an answer is read, as a type, so that it is parsed in one pass: the unit of its times
/// and which labels of its series are kept.
trait Reading {
    /// The time in this unit, or `None` when `ts` (finite) is not one.
    fn of(ts: f64) -> Option<i64>;
    /// Whether the label `name` is kept (the others are skipped while parsing, never
    /// allocated).
    fn keeps(name: &str) -> bool {
        let _ = name;
        true
    }
}

/// Evaluation times of a range query: whole seconds (whole hours, even). A fraction is not an
/// answer to our query, so it is not rounded into one.
struct Seconds;
impl Reading for Seconds {
    fn of(ts: f64) -> Option<i64> {
        (ts.fract() == 0.0).then_some(ts as i64)
    }
}

/// Sample times: milliseconds, as Prometheus stores them. Written with three decimals, so the
/// product is within rounding of a whole number. Only the labels that tell a container's
/// usage counter apart are kept ([`crate::counters`] reads no other): cAdvisor writes many
/// more (`image`, `name`, `instance`, `job`, `metrics_path`, …), and allocating each for every
/// raw series was most of the cost of reading the samples (measured with callgrind).
struct Millis;
impl Reading for Millis {
    fn of(ts: f64) -> Option<i64> {
        Some((ts * 1000.0).round() as i64)
    }
    fn keeps(name: &str) -> bool {
        matches!(name, "namespace" | "pod" | "container" | "id")
    }
}

#[derive(Deserialize)]
#[serde(bound = "")]
struct ApiResponse<T: Reading> {
    status: String,
    #[serde(default)]
    data: Option<ApiData<T>>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    /// VictoriaMetrics cluster's mark of an answer some storage node did not contribute to.
    #[serde(default, rename = "isPartial")]
    is_partial: bool,
}

/// The data of an answer: exactly these fields, so that an answer in a shape we do not know
/// fails instead of being read as no series.
#[derive(Deserialize)]
#[serde(bound = "", deny_unknown_fields)]
struct ApiData<T: Reading> {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<ApiSeries<T>>,
}

/// One series of a matrix: its labels and its float samples, both required, nothing else
/// (an instant vector's `value`, or native `histograms`, would otherwise read as a series with
/// no points, billed 0).
#[derive(Deserialize)]
#[serde(bound = "", deny_unknown_fields)]
struct ApiSeries<T: Reading> {
    metric: Labels<T>,
    values: Points<T>,
}

/// A series' labels, those `T` keeps ([`Reading::keeps`]).
struct Labels<T> {
    labels: BTreeMap<String, String>,
    reading: std::marker::PhantomData<T>,
}

impl<'de, T: Reading> Deserialize<'de> for Labels<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Map<T>(std::marker::PhantomData<T>);
        impl<'de, T: Reading> serde::de::Visitor<'de> for Map<T> {
            type Value = Labels<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of label names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Labels<T>, A::Error> {
                let mut labels = BTreeMap::new();
                while let Some(name) = map.next_key::<Text>()? {
                    if T::keeps(&name.0) {
                        labels.insert(name.0.into_owned(), map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(Labels {
                    labels,
                    reading: std::marker::PhantomData,
                })
            }
        }
        d.deserialize_map(Map(std::marker::PhantomData))
    }
}

/// A series' `[unix seconds, "value"]` pairs, read straight into `(i64, f64)` while the answer
/// is parsed: an answer of a million points must not first become a million strings (most of a
/// span's memory, measured). The first pair that is not a time in `T` (see [`Reading`]) and
/// a number is kept aside, text and all, for the error; the rest of the series is then skipped.
struct Points<T> {
    points: Vec<(i64, f64)>,
    bad: Option<(f64, String)>,
    unit: std::marker::PhantomData<T>,
}

impl<T> Default for Points<T> {
    fn default() -> Self {
        Self {
            points: Vec::new(),
            bad: None,
            unit: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Reading> Deserialize<'de> for Points<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Seq<T>(std::marker::PhantomData<T>);
        impl<'de, T: Reading> serde::de::Visitor<'de> for Seq<T> {
            type Value = Points<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of [time, \"value\"] pairs")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Points<T>, A::Error> {
                let mut out = Points::default();
                while let Some((ts, text)) = seq.next_element::<(f64, Text)>()? {
                    if out.bad.is_some() {
                        continue;
                    }
                    let time = ts.is_finite().then(|| T::of(ts)).flatten();
                    match (time, text.0.parse::<f64>()) {
                        (Some(t), Ok(v)) => out.points.push((t, v)),
                        _ => out.bad = Some((ts, text.0.into_owned())),
                    }
                }
                out.points.shrink_to_fit();
                Ok(out)
            }
        }
        d.deserialize_seq(Seq(std::marker::PhantomData))
    }
}

/// A sample value's text, borrowed from the answer unless it had to be unescaped.
struct Text<'a>(std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sample value as a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Visitor)
    }
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
        self.send::<Seconds>(&Request {
            what: q.what,
            expr: q.expr,
            endpoint: &self.range_endpoint,
            params: vec![
                ("start", q.start.timestamp().to_string()),
                ("end", q.end.timestamp().to_string()),
                ("step", format!("{}s", q.step.as_secs())),
            ],
            range: q.range(),
        })
        .await
    }

    /// The raw samples of a range selector, as [`Series`] of `(unix milliseconds, value)`
    /// samples, with the retries of [`Prometheus::query_range`].
    pub async fn query_samples(&self, q: &SampleQuery<'_>) -> Result<Vec<Series>> {
        self.send::<Millis>(&Request {
            what: q.what,
            expr: q.expr,
            endpoint: &self.instant_endpoint,
            params: vec![("time", q.at.timestamp().to_string())],
            range: format!("samples at {}", crate::window::rfc3339(q.at)),
        })
        .await
    }

    /// Send `q` within the scope, retrying as [`Prometheus::query_range`] says. Every query
    /// the job sends passes here: the one place the scope is added ([`Scope::apply`]).
    async fn send<T: Reading>(&self, q: &Request<'_>) -> Result<Vec<Series>> {
        let scoped = self.config.scope.apply(q.expr);
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

/// The first bytes of a body, for error messages.
/// One answer of Prometheus and what it was the answer to: everything needed to turn the
/// bytes into series or an error, apart from the transport (so that fuzzing drives the same
/// code as a real query: `Answer::interpret`).
pub struct Answer<'a> {
    /// The API root, credentials redacted.
    pub url: &'a str,
    pub what: &'a str,
    pub range: &'a str,
    pub status: u16,
    pub content_type: &'a str,
    pub retry_after: Option<Duration>,
    /// Values scrubbed from any text of the answer that reaches an error.
    pub secrets: &'a [String],
    pub allow_partial_data: bool,
}

impl Answer<'_> {
    /// Text of the answer as it may appear in an error: our secrets scrubbed, at most 120
    /// characters (an answer may echo the request, or be megabytes of garbage).
    fn shown(&self, text: &str) -> String {
        snippet(text.as_bytes(), self.secrets)
    }

    /// The series of a successful range query, or the error the answer means.
    pub fn interpret(&self, body: &[u8]) -> Result<Vec<Series>> {
        self.interpret_in::<Seconds>(body)
    }

    /// The series of a successful [`SampleQuery`] (times in milliseconds), or the error the
    /// answer means.
    pub fn interpret_samples(&self, body: &[u8]) -> Result<Vec<Series>> {
        self.interpret_in::<Millis>(body)
    }

    fn interpret_in<T: Reading>(&self, body: &[u8]) -> Result<Vec<Series>> {
        let parsed: std::result::Result<ApiResponse<T>, _> = serde_json::from_slice(body);
        // JSON in a shape that is not an answer (a missing or unknown field) is refused as such;
        // JSON cut off in transit is told apart below.
        let (parsed, shape) = match parsed {
            Ok(p) => (Some(p), None),
            Err(e) if e.is_data() => (None, Some(e.to_string())),
            Err(_) => (None, None),
        };
        if !(200..300).contains(&self.status) {
            let detail = match &parsed {
                Some(ApiResponse {
                    error_type, error, ..
                }) if error.is_some() => format!(
                    "{}: {}",
                    error_type.as_deref().unwrap_or("error"),
                    error.as_deref().unwrap_or_default()
                ),
                _ => snippet(body, self.secrets),
            };
            let detail = self.shown(&detail);
            let hint = match self.status {
                401 | 403 => {
                    "; check --prometheus-bearer-token-file and that the service account may \
                         read metrics"
                }
                404 => "; check --prometheus-url (it must be the API root, without /api/v1)",
                400 | 422 => "; the query or its range was refused",
                429 => "; Prometheus is overloaded, retry later",
                _ => "; retry later, or check Prometheus's health",
            };
            return Err(PrometheusError::Status {
                url: self.url.to_string(),
                what: self.what.into(),
                range: self.range.to_string(),
                status: self.status,
                detail,
                hint,
                retry_after: self.retry_after,
            });
        }
        let mut parsed = match parsed {
            Some(p) => p,
            None if shape.is_some() => {
                return Err(PrometheusError::Shape {
                    url: self.url.to_string(),
                    what: self.what.into(),
                    range: self.range.to_string(),
                    reason: self.shown(shape.as_deref().unwrap_or_default()),
                });
            }
            // Said to be JSON but unreadable: cut off in transit, most likely; worth a retry.
            None if self.content_type.contains("json") => {
                let reason = serde_json::from_slice::<serde::de::IgnoredAny>(body)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "not the shape of a Prometheus answer".into());
                return Err(PrometheusError::BadJson {
                    url: self.url.to_string(),
                    what: self.what.into(),
                    range: self.range.to_string(),
                    reason,
                });
            }
            None => {
                return Err(PrometheusError::NotJson {
                    url: self.url.to_string(),
                    what: self.what.into(),
                    range: self.range.to_string(),
                    content_type: self.content_type.to_string(),
                    snippet: snippet(body, self.secrets),
                });
            }
        };
        if parsed.status != "success" {
            return Err(PrometheusError::Query {
                what: self.what.into(),
                range: self.range.to_string(),
                error_type: self.shown(&parsed.error_type.unwrap_or_else(|| "error".into())),
                error: self.shown(&parsed.error.unwrap_or_default()),
            });
        }
        if parsed.is_partial && parsed.warnings.is_empty() {
            parsed
                .warnings
                .push("isPartial: true (a storage node did not answer)".into());
        }
        if !parsed.warnings.is_empty() {
            if self.allow_partial_data {
                warn!(query = self.what, warnings = ?parsed.warnings, "accepting partial data");
            } else {
                return Err(PrometheusError::Partial {
                    what: self.what.into(),
                    range: self.range.to_string(),
                    warnings: self.shown(&parsed.warnings.join("; ")),
                });
            }
        }
        let data = parsed.data.ok_or_else(|| PrometheusError::ResultType {
            what: self.what.into(),
            range: self.range.to_string(),
            result_type: "no".into(),
        })?;
        if data.result_type != "matrix" {
            return Err(PrometheusError::ResultType {
                what: self.what.into(),
                range: self.range.to_string(),
                result_type: data.result_type,
            });
        }
        data.result
            .into_iter()
            .map(|s| {
                if let Some((ts, value)) = s.values.bad {
                    return Err(PrometheusError::Sample {
                        what: self.what.into(),
                        range: self.range.to_string(),
                        value: self.shown(&value),
                        ts,
                    });
                }
                let points = s.values.points;
                Ok(Series {
                    labels: s.metric.labels,
                    points,
                })
            })
            .collect()
    }
}

/// The start of an answer for an error message, with our secrets scrubbed first and control
/// characters escaped (`\n`, `\u{1b}`): text a server chose must not forge further log lines
/// or send escape codes to an operator's terminal.
fn snippet(body: &[u8], secrets: &[String]) -> String {
    let text = scrub(String::from_utf8_lossy(body).into_owned(), secrets);
    let mut s = String::new();
    for c in text.trim().chars().take(120) {
        if c.is_control() {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    if text.trim().chars().count() > 120 {
        s.push('…');
    }
    s
}

/// The longest `Retry-After` a run waits for; beyond it the run stops and the next scheduled
/// run retries (an hourly job must not sleep through its own successor).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110).
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.to_utc();
    Some((at - now).to_std().unwrap_or_default())
}

/// `url` for logs and errors: a password in it (sent as Basic authentication) is replaced by
/// `***`.
pub fn redacted(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    // A query string may carry a token (`?access_token=…`): its names are kept, values hidden.
    if shown.query().is_some() {
        let names: Vec<String> = shown.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let mut pairs = shown.query_pairs_mut();
        pairs.clear();
        for name in &names {
            pairs.append_pair(name, "***");
        }
    }
    shown.to_string()
}

/// Whether `to` has the scheme, host and port of `from`: the only redirects followed.
fn same_origin(from: &reqwest::Url, to: &reqwest::Url) -> bool {
    from.scheme() == to.scheme()
        && from.host_str() == to.host_str()
        && from.port_or_known_default() == to.port_or_known_default()
}

/// The marker of a refused redirect in reqwest's error chain.
#[derive(Debug)]
struct CrossOrigin(String);

impl std::fmt::Display for CrossOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CrossOrigin {}

/// The refused redirect's target, if `e` is one.
fn find_cross_origin(e: &reqwest::Error) -> Option<String> {
    if !e.is_redirect() {
        return None;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<CrossOrigin>() {
            return Some(c.0.clone());
        }
        source = s.source();
    }
    Some("(unknown)".into())
}

/// `text` with every secret we sent replaced by `<redacted>`: an error page that echoes the
/// request must not carry the token or password into the log.
fn scrub(mut text: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret.as_str(), "<redacted>");
    }
    text
}

/// An error and its sources on one line: reqwest hides the useful part ("Connection refused")
/// in the source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the prometheus_answer fuzz target: answer text that reaches an error (a
    /// sample value, the error field, warnings) is scrubbed of our secrets and bounded.
    #[test]
    fn answer_text_in_errors_is_scrubbed_and_bounded() {
        let secrets = vec!["s3cr3t-token".to_string()];
        let answer = |status: u16| Answer {
            url: "http://p",
            what: "cpu",
            range: "r",
            status,
            content_type: "application/json",
            retry_after: None,
            secrets: &secrets,
            allow_partial_data: false,
        };
        let long = "x".repeat(5000);
        for (status, body) in [
            (200, format!(r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[[1,"{long} s3cr3t-token"]]}}]}}}}"#)),
            (200, r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"s3cr3t-token"]]}]}}"#.to_string()),
            (200, format!(r#"{{"status":"error","errorType":"x","error":"echo s3cr3t-token {long}"}}"#)),
            (200, r#"{"status":"success","warnings":["saw s3cr3t-token"],"data":{"resultType":"matrix","result":[]}}"#.to_string()),
            (500, format!(r#"{{"status":"error","errorType":"x","error":"{long} s3cr3t-token"}}"#)),
        ] {
            let e = answer(status).interpret(body.as_bytes()).unwrap_err().to_string();
            assert!(!e.contains("s3cr3t-token"), "{e}");
            assert!(e.len() < 600, "{} characters", e.len());
        }
    }

    /// Raw samples keep their millisecond times; range queries refuse a fraction of a second.
    #[test]
    fn sample_times_are_milliseconds() {
        let answer = Answer {
            url: "http://p",
            what: "cpu samples",
            range: "samples at 2026-11-01T04:00:00Z",
            status: 200,
            content_type: "application/json",
            retry_after: None,
            secrets: &[],
            allow_partial_data: false,
        };
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"namespace":"a"},"values":[[1793498400.007,"1.5"],[1793498430,"2"]]}]}}"#;
        let series = answer.interpret_samples(body).unwrap();
        assert_eq!(
            series[0].points,
            [(1_793_498_400_007, 1.5), (1_793_498_430_000, 2.0)]
        );
        let e = answer.interpret(body).unwrap_err().to_string();
        assert!(e.contains("unreadable sample"), "{e}");
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now: DateTime<Utc> = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
