//! The job's own metrics, pushed to a Prometheus Pushgateway at the end of every run, success
//! or failure: a batch job has nothing to scrape, and an hourly billing job that silently
//! stops is the worst failure. The alerts in `kustomize/components/alerts` and the dashboard in
//! `deploy/grafana` read these metrics.
//!
//! One group per job and cluster (`/metrics/job/consumption-metrics/cluster/<cluster>`; a
//! dry-run's under the job `consumption-metrics-dry-run`, which no alert reads), sent
//! with POST: metrics of the same name are replaced, others kept, so
//! `consumption_metrics_last_success_timestamp_seconds`, pushed only by a successful run,
//! survives the failed runs after it, which is what "no success for N hours" needs.
//!
//! Every value describes the last run, so every metric is a gauge (none is a counter, so none
//! ends in `_total`); units are suffixes (`_seconds`, `_bytes`, `_timestamp_seconds`). A push
//! that fails is logged and never fails the run or touches the checkpoint.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::report::RunReport;

/// The grouping key's job of the runs that bill: the alerts and the dashboard read it.
pub const JOB: &str = "consumption-metrics";

/// The grouping key's job of dry-runs, so that a dry-run's success never stands for a billing
/// run's.
pub const DRY_RUN_JOB: &str = "consumption-metrics-dry-run";

/// Where to push.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The Pushgateway's base URL, e.g. `http://pushgateway.monitoring:9091`.
    pub url: reqwest::Url,
    /// The grouping key's job: [`JOB`] or [`DRY_RUN_JOB`].
    pub job: &'static str,
    pub cluster: String,
    pub timeout: Duration,
}

/// How a run ended, by exit class (docs/operating.md, Exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: u8,
    /// The run stopped at an hour Prometheus holds no data for (it blocks every later run
    /// until the checkpoint is moved past it).
    pub no_data: bool,
}

/// The exit classes, by code.
const CLASSES: [(u8, &str); 8] = [
    (crate::exit::OK, "ok"),
    (crate::exit::INTERNAL, "internal"),
    (crate::exit::USAGE, "usage"),
    (crate::exit::CHECKPOINT, "checkpoint"),
    (crate::exit::COLLECT, "collect"),
    (crate::exit::OUTPUT, "output"),
    (crate::exit::INCOMPLETE, "incomplete"),
    (crate::exit::INTERRUPTED, "interrupted"),
];

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text exposition being written: `# HELP`, `# TYPE` and the samples of each gauge.
struct Exposition(String);

impl Exposition {
    fn gauge(&mut self, name: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }
}

/// One sample without labels.
fn plain(v: f64) -> Vec<(String, f64)> {
    vec![(String::new(), v)]
}

/// The metrics of one run, in the Prometheus text exposition format.
pub fn render(report: Option<&RunReport>, outcome: Outcome, now: DateTime<Utc>) -> String {
    let mut g = Exposition(String::new());
    let default = RunReport::default();
    let r = report.unwrap_or(&default);
    outcome_gauges(&mut g, outcome, now);
    state_gauges(&mut g, r, now);
    run_gauges(&mut g, r);
    g.0
}

/// The build and how the last run ended.
fn outcome_gauges(g: &mut Exposition, outcome: Outcome, now: DateTime<Utc>) {
    let now_s = now.timestamp() as f64;
    g.gauge(
        "consumption_metrics_build_info",
        "Version of the consumption-metrics binary that ran last.",
        &[(
            format!("{{version=\"{}\"}}", escape(env!("CARGO_PKG_VERSION"))),
            1.0,
        )],
    );
    g.gauge(
        "consumption_metrics_last_attempt_timestamp_seconds",
        "When the last run ended, successful or not.",
        &plain(now_s),
    );
    if outcome.exit_code == crate::exit::OK {
        g.gauge(
            "consumption_metrics_last_success_timestamp_seconds",
            "When the last successful run ended.",
            &plain(now_s),
        );
    }
    g.gauge(
        "consumption_metrics_last_run_success",
        "1 if the last run succeeded, 0 otherwise.",
        &plain(f64::from(u8::from(outcome.exit_code == crate::exit::OK))),
    );
    g.gauge(
        "consumption_metrics_last_run_exit_code",
        "Exit code of the last run (docs/operating.md, Exit codes).",
        &plain(f64::from(outcome.exit_code)),
    );
    let classes: Vec<(String, f64)> = CLASSES
        .iter()
        .map(|(code, class)| {
            (
                format!("{{class=\"{class}\"}}"),
                f64::from(u8::from(*code == outcome.exit_code)),
            )
        })
        .collect();
    g.gauge(
        "consumption_metrics_last_run_outcome",
        "1 for the exit class of the last run, 0 for the others.",
        &classes,
    );
    g.gauge(
        "consumption_metrics_last_run_no_data",
        "1 if the last run stopped at an hour Prometheus holds no data for.",
        &plain(f64::from(u8::from(outcome.no_data))),
    );
}

/// Where the run left things: the checkpoint, the hours waiting for their data, and what the
/// configured sources cannot see.
fn state_gauges(g: &mut Exposition, r: &RunReport, now: DateTime<Utc>) {
    if let Some(cp) = r.checkpoint_end {
        g.gauge(
            "consumption_metrics_checkpoint_timestamp_seconds",
            "The checkpoint after the last run: end of the last hour fully published.",
            &plain(cp.timestamp() as f64),
        );
        g.gauge(
            "consumption_metrics_checkpoint_lag_seconds",
            "How far the checkpoint is behind the end of the last run.",
            &plain((now - cp).num_seconds().max(0) as f64),
        );
    }
    // Always pushed (0 when nothing waits): a POST keeps metrics it does not name, so a value
    // from an earlier run would otherwise stay.
    let waiting = r.waiting.as_ref();
    g.gauge(
        "consumption_metrics_hours_waiting",
        "Settled hours the last run left unbilled because the store does not hold them in \
         full yet (remote write lags); the next run bills them.",
        &plain(waiting.map_or(0.0, |w| w.hours as f64)),
    );
    g.gauge(
        "consumption_metrics_gpu_dra_pods",
        "Pods that held devices through Dynamic Resource Allocation in the hours the last run \
         billed by GPU requests (--gpu-source requests), which bills them 0 GPU-hours; \
         --gpu-source devices sees them.",
        &plain(r.gpu_dra_pods as f64),
    );
    g.gauge(
        "consumption_metrics_pods_requests_unseen",
        "Running pods, at the end of the last run's hours, that reserve more than their \
         containers request (pod-level requests of Kubernetes 1.34+, a pending resize down), \
         which --request-source kube-state-metrics bills at their containers' requests; \
         --request-source scheduler sees them.",
        &plain(r.pods_requests_unseen as f64),
    );
    g.gauge(
        "consumption_metrics_oldest_hour_waiting_seconds",
        "How long ago the oldest hour waiting for its data ended (0 when none waits).",
        &plain(waiting.map_or(0.0, |w| (now - w.hour_end).num_seconds().max(0) as f64)),
    );
    g.gauge(
        "consumption_metrics_data_lag_seconds",
        "How far the lagging source's newest sample was behind the end of the hour waiting for \
         it (0 when none waits).",
        &waiting.map_or_else(
            || plain(0.0),
            |w| {
                vec![(
                    format!("{{source=\"{}\"}}", escape(&w.source)),
                    w.newest
                        .map_or((now - w.hour_end).num_seconds(), |t| {
                            (w.hour_end - t).num_seconds()
                        })
                        .max(0) as f64,
                )]
            },
        ),
    );
}

/// What the last run did: hours, messages, bytes, time per step, Prometheus requests.
fn run_gauges(g: &mut Exposition, r: &RunReport) {
    g.gauge(
        "consumption_metrics_last_run_hours_planned",
        "Hours the last run planned to bill.",
        &plain(r.planned as f64),
    );
    g.gauge(
        "consumption_metrics_last_run_hours_published",
        "Hours the last run published and had acknowledged by Kafka.",
        &plain(r.published as f64),
    );
    g.gauge(
        "consumption_metrics_last_run_messages",
        "Messages (parts included) the last run delivered.",
        &plain(r.messages as f64),
    );
    g.gauge(
        "consumption_metrics_last_run_payload_bytes",
        "Bytes of JSON payload the last run delivered.",
        &plain(r.bytes as f64),
    );
    g.gauge(
        "consumption_metrics_last_run_step_duration_seconds",
        "Time the last run spent in each step.",
        &[
            ("{step=\"collect\"}".to_string(), r.collect.as_secs_f64()),
            ("{step=\"deliver\"}".to_string(), r.deliver.as_secs_f64()),
            (
                "{step=\"checkpoint\"}".to_string(),
                r.checkpoint.as_secs_f64(),
            ),
        ],
    );
    g.gauge(
        "consumption_metrics_last_run_prometheus_requests",
        "Prometheus requests the last run sent, retries included.",
        &plain(r.prometheus_requests as f64),
    );
    g.gauge(
        "consumption_metrics_last_run_prometheus_request_duration_seconds",
        "Time the last run waited for Prometheus, all requests together.",
        &plain(r.prometheus_time.as_secs_f64()),
    );
    if let Some(w) = r.windows {
        g.gauge(
            "consumption_metrics_query_windows_info",
            "Range-window semantics the last run measured on its query engine.",
            &[(format!("{{windows=\"{w}\"}}"), 1.0)],
        );
    }
}

/// Push the metrics of one run. Never fails the run: a problem is logged at WARN.
pub async fn push(settings: &PushSettings, report: Option<&RunReport>, outcome: Outcome) {
    let body = render(report, outcome, Utc::now());
    let mut url = settings.url.clone();
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!(
        "{path}/metrics/job/{}/cluster/{}",
        settings.job, settings.cluster
    ));
    let shown = crate::prometheus::redacted(&url);
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(url = %shown, error = %e, "could not push the run's metrics: no HTTP client");
            return;
        }
    };
    match client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => info!(url = %shown, "run metrics pushed"),
        Ok(r) => warn!(
            url = %shown,
            status = r.status().as_u16(),
            "the Pushgateway refused the run's metrics; the run itself is unaffected"
        ),
        Err(e) => warn!(
            url = %shown,
            error = %e.without_url(),
            "could not push the run's metrics; the run itself is unaffected"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_keeps_the_last_success_out() {
        let now: DateTime<Utc> = "2026-11-22T10:20:00Z".parse().unwrap();
        let failed = render(
            None,
            Outcome {
                exit_code: 4,
                no_data: true,
            },
            now,
        );
        assert!(!failed.contains("last_success_timestamp"), "{failed}");
        assert!(failed.contains("consumption_metrics_last_run_outcome{class=\"collect\"} 1"));
        assert!(failed.contains("consumption_metrics_last_run_outcome{class=\"ok\"} 0"));
        assert!(failed.contains("consumption_metrics_last_run_no_data 1"));
        let report = RunReport {
            checkpoint_end: Some("2026-11-22T07:00:00Z".parse().unwrap()),
            ..RunReport::default()
        };
        let ok = render(
            Some(&report),
            Outcome {
                exit_code: 0,
                no_data: false,
            },
            now,
        );
        assert!(ok.contains("consumption_metrics_last_success_timestamp_seconds 1795342800"));
        assert!(
            ok.contains("consumption_metrics_checkpoint_lag_seconds 12000"),
            "{ok}"
        );
    }
}
