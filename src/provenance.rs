//! Provenance: which series the job believes. Each source a bill is read from is read only
//! from the platform's own exporter, picked by label matchers added to every selector of that
//! source's metrics, the way `--prometheus-selector` is added to every selector
//! ([`crate::scope`]).
//!
//! Why: a store often holds, beside the platform's exporters, what tenants scrape themselves
//! (a central store, OpenShift's thanos-querier over user-workload monitoring, a Prometheus
//! whose ServiceMonitor selector admits every namespace). Any tenant can run its own
//! kube-state-metrics or dcgm-exporter, or push series with the same names. Read without a
//! provenance matcher, such a series moves GPU-hours between namespaces, invents a device, or
//! stops the whole cluster's bill (a series that is not billable refuses the hour). Read with
//! one, it changes nothing; `check` names each such job and how many series it writes.
//!
//! The defaults are the `job` labels the platform's installers give their exporters. Prometheus
//! Operator names a ServiceMonitor's job after the Service, or after the Service label named
//! by `jobLabel` (prometheus-operator API reference, `ServiceMonitorSpec.jobLabel`):
//! - **kube-state-metrics**: `job="kube-state-metrics"`. kube-prometheus
//!   (`manifests/kubeStateMetrics-serviceMonitor.yaml`: `jobLabel: app.kubernetes.io/name`,
//!   the Service labelled `app.kubernetes.io/name: kube-state-metrics`), kube-prometheus-stack
//!   (its rules and dashboards select `job="kube-state-metrics"`), and OpenShift cluster
//!   monitoring (`openshift-monitoring/kube-state-metrics`, Service `kube-state-metrics`).
//! - **cAdvisor**: `job="kubelet", metrics_path="/metrics/cadvisor"`. The kubelet
//!   ServiceMonitor of kube-prometheus, kube-prometheus-stack and OpenShift scrapes
//!   `/metrics/cadvisor` as one endpoint of the `kubelet` job and copies `__metrics_path__`
//!   into `metrics_path` (their relabelings), which their own recording rules select.
//! - **dcgm-exporter**: `job=~"nvidia-dcgm-exporter|dcgm-exporter"`. The GPU Operator's
//!   ServiceMonitor selects its Service `nvidia-dcgm-exporter`; the standalone dcgm-exporter
//!   Helm chart names its Service after the release (`dcgm-exporter` by default).
//! - **kube-scheduler** (`kube_pod_resource_request`, `--request-source scheduler`):
//!   `job=~"kube-scheduler|scheduler"`. kube-prometheus and kube-prometheus-stack name the
//!   scheduler's job `kube-scheduler` (its ServiceMonitor's `jobLabel` on the Service
//!   `kube-scheduler`; kube-prometheus-stack scrapes `/metrics/resources` with
//!   `kubeScheduler.serviceMonitor.resource.enabled`, prometheus-community/helm-charts#7118);
//!   OpenShift scrapes `/metrics/resources` from 4.7 on (openshift/cluster-kube-scheduler-
//!   operator#283) through the Service `scheduler` of `openshift-kube-scheduler`.
//!
//! A job name is what the platform chose, not a secret: a tenant allowed to create a
//! ServiceMonitor for a Service of the same name in its own namespace, scraped by the same
//! Prometheus, writes the same `job`. Where that is possible, set the source's matchers to a
//! label tenants cannot write, for example OpenShift's `prometheus="openshift-monitoring/k8s"`
//! (the external label of the platform's Prometheus; user workload monitoring writes
//! `prometheus="openshift-user-workload-monitoring/user-workload"`), or an external label
//! only the platform's Prometheus carries.

use std::fmt;

use crate::scope::{MetricMatchers, Scope};

/// A source a bill is read from, by the exporter that writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    KubeStateMetrics,
    Cadvisor,
    DcgmExporter,
    Scheduler,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::KubeStateMetrics,
        Source::Cadvisor,
        Source::DcgmExporter,
        Source::Scheduler,
    ];

    /// The exporter's name, as logs and `check` say it.
    pub fn name(self) -> &'static str {
        match self {
            Source::KubeStateMetrics => "kube-state-metrics",
            Source::Cadvisor => "cadvisor",
            Source::DcgmExporter => "dcgm-exporter",
            Source::Scheduler => "kube-scheduler",
        }
    }

    /// The setting that picks its series.
    pub fn flag(self) -> &'static str {
        match self {
            Source::KubeStateMetrics => "--kube-state-metrics-selector",
            Source::Cadvisor => "--cadvisor-selector",
            Source::DcgmExporter => "--dcgm-exporter-selector",
            Source::Scheduler => "--scheduler-selector",
        }
    }

    /// Its environment variable.
    pub fn env(self) -> &'static str {
        match self {
            Source::KubeStateMetrics => "KUBE_STATE_METRICS_SELECTOR",
            Source::Cadvisor => "CADVISOR_SELECTOR",
            Source::DcgmExporter => "DCGM_EXPORTER_SELECTOR",
            Source::Scheduler => "SCHEDULER_SELECTOR",
        }
    }

    /// The platform's default matchers (module documentation).
    pub fn default_matchers(self) -> &'static str {
        match self {
            Source::KubeStateMetrics => r#"job="kube-state-metrics""#,
            Source::Cadvisor => r#"job="kubelet", metrics_path="/metrics/cadvisor""#,
            Source::DcgmExporter => r#"job=~"nvidia-dcgm-exporter|dcgm-exporter""#,
            Source::Scheduler => r#"job=~"kube-scheduler|scheduler""#,
        }
    }

    /// The source that writes `metric`, if the job reads it from one. kube-scheduler's
    /// `kube_pod_resource_*` share kube-state-metrics' prefix but not its exporter.
    pub fn of_metric(metric: &str) -> Option<Source> {
        if metric.starts_with("kube_pod_resource_") {
            Some(Source::Scheduler)
        } else if metric.starts_with("kube_") {
            Some(Source::KubeStateMetrics)
        } else if metric.starts_with("container_") {
            Some(Source::Cadvisor)
        } else if metric.starts_with("DCGM_") || metric.starts_with("dcgm_") {
            Some(Source::DcgmExporter)
        } else {
            None
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Per source, the matchers of its series the job believes; an empty one believes every job
/// that writes the metric (a choice the operator makes explicitly, warned about at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    kube_state_metrics: Scope,
    cadvisor: Scope,
    dcgm_exporter: Scope,
    scheduler: Scope,
}

impl MetricMatchers for Provenance {
    fn for_metric(&self, metric: &str) -> Option<&Scope> {
        Provenance::for_metric(self, metric)
    }
    fn is_any(&self) -> bool {
        Provenance::is_any(self)
    }
}

impl Default for Provenance {
    /// The platform's exporters as their installers name them.
    fn default() -> Self {
        let parse = |s: Source| Scope::parse(s.default_matchers()).unwrap_or_default();
        Provenance {
            kube_state_metrics: parse(Source::KubeStateMetrics),
            cadvisor: parse(Source::Cadvisor),
            dcgm_exporter: parse(Source::DcgmExporter),
            scheduler: parse(Source::Scheduler),
        }
    }
}

impl Provenance {
    /// Believe every job (tests of the matchers' placement; never a default).
    pub fn any() -> Self {
        Provenance {
            kube_state_metrics: Scope::default(),
            cadvisor: Scope::default(),
            dcgm_exporter: Scope::default(),
            scheduler: Scope::default(),
        }
    }

    /// From each source's setting: `None` keeps the default, an empty string believes every
    /// job, anything else is parsed as `--prometheus-selector` is. `Err` names the flag and
    /// what is wrong.
    pub fn parse(
        kube_state_metrics: Option<&str>,
        cadvisor: Option<&str>,
        dcgm_exporter: Option<&str>,
        scheduler: Option<&str>,
    ) -> Result<Self, String> {
        let one = |source: Source, raw: Option<&str>| -> Result<Scope, String> {
            let raw = raw.map(str::trim).unwrap_or(source.default_matchers());
            Scope::parse(raw).map_err(|reason| {
                format!(
                    "invalid {} ({}): {reason}; give label matchers in PromQL syntax that pick \
                     the platform's own {}, e.g. {} (docs/trust.md)",
                    source.flag(),
                    source.env(),
                    source.name(),
                    source.default_matchers()
                )
            })
        };
        Ok(Provenance {
            kube_state_metrics: one(Source::KubeStateMetrics, kube_state_metrics)?,
            cadvisor: one(Source::Cadvisor, cadvisor)?,
            dcgm_exporter: one(Source::DcgmExporter, dcgm_exporter)?,
            scheduler: one(Source::Scheduler, scheduler)?,
        })
    }

    /// The matchers of `source`.
    pub fn of(&self, source: Source) -> &Scope {
        match source {
            Source::KubeStateMetrics => &self.kube_state_metrics,
            Source::Cadvisor => &self.cadvisor,
            Source::DcgmExporter => &self.dcgm_exporter,
            Source::Scheduler => &self.scheduler,
        }
    }

    /// The matchers added to a selector of `metric`: its source's, or none.
    pub fn for_metric(&self, metric: &str) -> Option<&Scope> {
        Source::of_metric(metric)
            .map(|s| self.of(s))
            .filter(|s| !s.is_empty())
    }

    /// The matchers of `source`'s scrape targets, for a selector of their `up` (which
    /// Prometheus writes per target, so the provenance cannot be added by the metric's name):
    /// the source's matchers, or every job's targets when it believes every job.
    pub fn targets(&self, source: Source) -> String {
        let m = self.of(source);
        if m.is_empty() {
            r#"job=~".+""#.to_string()
        } else {
            m.to_string()
        }
    }

    /// Whether no source has matchers (every selector is left as the scope makes it).
    pub fn is_any(&self) -> bool {
        Source::ALL.iter().all(|s| self.of(*s).is_empty())
    }

    /// The sources whose series are believed from every job.
    pub fn unguarded(&self) -> Vec<Source> {
        Source::ALL
            .into_iter()
            .filter(|s| self.of(*s).is_empty())
            .collect()
    }

    /// One line per source, for `--check-config`.
    pub fn describe(&self) -> String {
        Source::ALL
            .iter()
            .map(|s| {
                let m = self.of(*s);
                if m.is_empty() {
                    format!("{s} from every job ({} empty)", s.flag())
                } else {
                    format!("{s} {{{m}}}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_metric_is_read_from_its_exporter() {
        let p = Provenance::default();
        assert_eq!(
            p.for_metric("kube_pod_status_phase").unwrap().to_string(),
            r#"job="kube-state-metrics""#
        );
        assert_eq!(
            p.for_metric("container_cpu_usage_seconds_total")
                .unwrap()
                .to_string(),
            r#"job="kubelet", metrics_path="/metrics/cadvisor""#
        );
        assert_eq!(
            p.for_metric("DCGM_FI_DEV_FB_USED").unwrap().to_string(),
            r#"job=~"nvidia-dcgm-exporter|dcgm-exporter""#
        );
        // kube-scheduler's metric shares kube-state-metrics' prefix, not its exporter;
        // Prometheus' own `up` is no exporter's.
        assert_eq!(
            p.for_metric("kube_pod_resource_request")
                .unwrap()
                .to_string(),
            r#"job=~"kube-scheduler|scheduler""#
        );
        assert_eq!(p.for_metric("up"), None);
        assert!(p.unguarded().is_empty());
    }

    #[test]
    fn settings_override_validate_and_may_believe_every_job() {
        let p = Provenance::parse(
            Some(r#"prometheus="openshift-monitoring/k8s""#),
            Some(""),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            p.of(Source::KubeStateMetrics).to_string(),
            r#"prometheus="openshift-monitoring/k8s""#
        );
        assert_eq!(p.for_metric("container_cpu_usage_seconds_total"), None);
        assert_eq!(p.unguarded(), vec![Source::Cadvisor]);
        let e = Provenance::parse(Some("job=kube-state-metrics"), None, None, None).unwrap_err();
        assert!(
            e.contains("--kube-state-metrics-selector") && e.contains("must be quoted"),
            "{e}"
        );
    }
}
