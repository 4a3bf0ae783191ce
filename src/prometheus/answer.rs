//! An answer of the HTTP API read in one pass: its times in the unit asked for, the labels
//! kept, and every way an answer is not one turned into an error.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tracing::warn;

use super::Series;
use super::error::{PrometheusError, Result};
use super::transport::scrub;

/// How an answer is read, as a type, so that it is parsed in one pass: the unit of its times
/// and which labels of its series are kept.
pub(super) trait Reading {
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
pub(super) struct Seconds;
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
pub(super) struct Millis;
impl Reading for Millis {
    fn of(ts: f64) -> Option<i64> {
        Some((ts * 1000.0).round() as i64)
    }
    fn keeps(name: &str) -> bool {
        matches!(name, "namespace" | "pod" | "container" | "id")
    }
}

/// Sample times in milliseconds, with the labels that tell a dcgm-exporter device and its
/// holder apart ([`crate::gpu::dcgm::read`] reads no other): the device's, the pod's in both the
/// `honor_labels` and the `exported_*` form (and dcgm-exporter's old names), the time-slicing
/// replica the pod holds (`vgpu`), the scrape target's, and DRA's claim.
pub(super) struct DeviceMillis;
impl Reading for DeviceMillis {
    fn of(ts: f64) -> Option<i64> {
        Millis::of(ts)
    }
    fn keeps(name: &str) -> bool {
        matches!(
            name,
            "UUID"
                | "uuid"
                | "GPU_I_ID"
                | "GPU_I_PROFILE"
                | "modelName"
                | "hostname"
                | "Hostname"
                | "namespace"
                | "pod"
                | "pod_namespace"
                | "pod_name"
                | "exported_namespace"
                | "exported_pod"
                | "exported_pod_namespace"
                | "exported_pod_name"
                | "job"
                | "instance"
                | "dra_claim_name"
                | "vgpu"
        )
    }
}

#[derive(Deserialize)]
#[serde(bound = "")]
pub(super) struct ApiResponse<T: Reading> {
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
pub(super) struct ApiData<T: Reading> {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<ApiSeries<T>>,
}

/// One series of a matrix: its labels and its float samples, both required, nothing else
/// (an instant vector's `value`, or native `histograms`, would otherwise read as a series with
/// no points, billed 0).
#[derive(Deserialize)]
#[serde(bound = "", deny_unknown_fields)]
pub(super) struct ApiSeries<T: Reading> {
    metric: Labels<T>,
    values: Points<T>,
}

/// A series' labels, those `T` keeps ([`Reading::keeps`]).
pub(super) struct Labels<T> {
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
pub(super) struct Points<T> {
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

/// A sample value's or a label name's text, borrowed from the answer unless it had to be
/// unescaped.
pub(super) struct Text<'a>(std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string (a sample value or a label name)")
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

    pub(super) fn interpret_in<T: Reading>(&self, body: &[u8]) -> Result<Vec<Series>> {
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
pub(super) fn snippet(body: &[u8], secrets: &[String]) -> String {
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
