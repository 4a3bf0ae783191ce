//! What a run did, step by step: the manager fills it in, the self-metrics push renders it,
//! and `main` logs it. A leaf of its own, so that the push (which configuration names) does not
//! depend on the manager (which depends on the configuration).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::queries::Windows;

/// What a run did, step by step; complete after a success, up to the failure otherwise.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Hours the plan held.
    pub planned: usize,
    /// Hours collected and delivered (printed, or acknowledged by Kafka).
    pub hours: usize,
    /// Hours acknowledged by Kafka.
    pub published: usize,
    /// Messages delivered (parts included).
    pub messages: usize,
    /// Bytes of JSON payload delivered.
    pub bytes: u64,
    /// Time spent collecting from Prometheus (and shaping).
    pub collect: Duration,
    /// Time spent delivering (Kafka: until every acknowledgement).
    pub deliver: Duration,
    /// Time spent reading and writing the checkpoint.
    pub checkpoint: Duration,
    /// The engine's window semantics, once measured.
    pub windows: Option<Windows>,
    /// The checkpoint's value after the run (end of the last hour fully published), when the
    /// run reads or writes it.
    pub checkpoint_end: Option<DateTime<Utc>>,
    /// Prometheus requests sent (retries included) and the time they took.
    pub prometheus_requests: u64,
    pub prometheus_time: Duration,
    /// The store did not hold an hour in full: the run billed the hours before it.
    pub waiting: Option<Waiting>,
    /// With `--gpu-source requests`: the most pods of one span that held devices through DRA,
    /// which the requests source bills 0.
    pub gpu_dra_pods: usize,
    /// With the kube-state-metrics source: the Running pods, at the end of the last span
    /// billed, that reserve more than their containers request (pod-level requests).
    pub pods_requests_unseen: usize,
}

/// The hours a run left because the store does not hold them in full yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// The end of the first such hour.
    pub hour_end: DateTime<Utc>,
    /// Planned hours left from it on.
    pub hours: usize,
    /// The lagging source, and its newest sample.
    pub source: String,
    pub newest: Option<DateTime<Utc>>,
}
