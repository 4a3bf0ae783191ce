//! `--check-config`: what a validated configuration makes a run do, in words.

use super::*;

impl Config {
    /// How far a scheduled run of this configuration reaches.
    pub fn reach(&self) -> Reach {
        Reach {
            now: self.now,
            settle_delay: self.settle_delay,
            max_hours_per_run: self.max_hours_per_run,
        }
    }

    /// A human-readable account of what this configuration makes a run do (`--check-config`).
    pub fn summary(&self) -> String {
        let (plan, output) = (self.plan_text(), self.output_text());
        let (checkpoint, store_time) = (self.checkpoint_text(), self.store_time_text());
        let tiers: Vec<String> = self
            .collect
            .storage_tiers
            .iter()
            .map(|(c, t)| format!("{c}={t:?}"))
            .collect();
        format!(
            "configuration is valid\n\
             plan:        {plan}\n\
             output:      {output}\n\
             checkpoint:  {checkpoint}\n\
             prometheus:  {} ({:?}{})\n\
             cluster:     {} (service {} {} at {}, message ids {})\n\
             cpu basis:   {:?}, request model {:?}\n\
             memory:      {}\n\
             scope:       {}\n\
             believed:    {}\n\
             windows:     {}\n\
             store time:  {}\n\
             tiers:       {}\n\
             gpu source:  {}\n\
             gpu models:  {}\n\
             gpu weights: {}\n\
             excluded:    {}\n\
             self-metrics: {}\n",
            crate::prometheus::redacted(&self.prometheus.url),
            self.prometheus_flavor,
            if self.prometheus.extra_params.is_empty() {
                String::new()
            } else {
                let p: Vec<String> = self
                    .prometheus
                    .extra_params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(", every query with {}", p.join("&"))
            },
            self.message.cluster_name,
            self.message.service_name,
            self.message.service_version,
            self.message.service_location,
            self.message.id_format,
            self.collect.cpu_basis,
            self.collect.request_model,
            if self.collect.bill_memory {
                "billed as ram (GiB-hours of memory requested, --bill-memory)"
            } else {
                "not billed (no ram key in the messages)"
            },
            if self.prometheus.scope.is_empty() {
                format!(
                    "the whole store (a run refuses data with more than one {} value)",
                    self.collect.cluster_label
                )
            } else {
                format!("every selector with {{{}}}", self.prometheus.scope)
            },
            self.prometheus.provenance.describe(),
            match self.collect.windows {
                Some(w) => format!("{w} (--window-semantics)"),
                None => "detected at the start of each run (closed on Prometheus 2.x, left-open \
                         on Prometheus 3.x and VictoriaMetrics)"
                    .to_string(),
            },
            store_time,
            if tiers.is_empty() {
                "(none)".into()
            } else {
                tiers.join(", ")
            },
            match self.collect.gpu_source {
                crate::gpu::GpuSource::Requests =>
                    "requests (kube-state-metrics' container requests, models by the node's \
                     nvidia.com/gpu.product label; GPUs allocated through DRA are not seen: a \
                     run warns of them)",
                crate::gpu::GpuSource::Devices =>
                    "devices (dcgm-exporter's DCGM_FI_DEV_FB_USED \
                     per device and pod: device plugin, DRA, MIG and shared GPUs)",
            },
            self.collect.gpu_models.describe(),
            self.collect.gpu_weights.describe(),
            if self.collect.exclude_namespaces.is_empty() {
                "(none: every namespace is billed)".to_string()
            } else {
                self.collect
                    .exclude_namespaces
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            match &self.pushgateway {
                Some(p) => format!(
                    "pushed to {} (job {}, cluster {})",
                    crate::prometheus::redacted(&p.url),
                    p.job,
                    p.cluster
                ),
                None => "not pushed (no --pushgateway-url)".to_string(),
            },
        )
    }

    /// The plan: scheduled, or a backfill of which hours.
    fn plan_text(&self) -> String {
        match &self.plan {
            Plan::Scheduled { .. } => format!(
                "scheduled: every hour after the checkpoint, settled {:?} after its end, at most \
                 {} per run",
                self.settle_delay, self.max_hours_per_run
            ),
            Plan::Backfill {
                hours,
                advance_checkpoint,
            } => format!(
                "backfill of {} hours from {}{}",
                hours.len(),
                hours.first().map(|h| h.to_string()).unwrap_or_default(),
                if *advance_checkpoint {
                    ", advancing the checkpoint"
                } else {
                    ""
                }
            ),
        }
    }

    /// Where the messages go.
    fn output_text(&self) -> String {
        match &self.output {
            Output::DryRun => "dry-run: messages printed on stdout".to_string(),
            Output::Publish(k) => format!(
                "publish to Kafka topic {} at {} over mutual TLS (CA {}, cert {})",
                k.topic,
                k.brokers,
                k.transport
                    .tls()
                    .map(|t| t.ca.display().to_string())
                    .unwrap_or_default(),
                k.transport
                    .tls()
                    .map(|t| t.cert.display().to_string())
                    .unwrap_or_default(),
            ),
        }
    }

    /// Where the checkpoint lives.
    fn checkpoint_text(&self) -> String {
        match &self.checkpoint {
            CheckpointSettings::File(p) => format!("file {}", p.display()),
            CheckpointSettings::ConfigMap { name, namespace } => format!(
                "ConfigMap {}/{name}",
                namespace.as_deref().unwrap_or("(pod namespace)")
            ),
        }
    }

    /// How the store's time holds an hour, and the holes bridged.
    fn store_time_text(&self) -> String {
        format!(
            "timeline and newest samples from namespace {}; an hour waits until every source \
             reaches its end ({}); holes up to {} bridged",
            self.collect.reference_namespace,
            if self.collect.bill_incomplete {
                "--bill-incomplete: billed anyway, with a warning"
            } else {
                "a dry-run or backfill refuses it, exit 7"
            },
            humantime::format_duration(self.collect.max_scrape_gap)
        )
    }
}
