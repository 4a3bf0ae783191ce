//! The PromQL of every dimension, and why it is exact on every engine.
//!
//! Each expression is evaluated by a range query at the *end* `E` of each hour (step 1h) and
//! describes the hour `[E-1h, E)`:
//!
//! * Gauges (requests, phases, PVC sizes) are integrated as `sum_over_time(x) * w`, where `w`
//!   is the seconds one sample stands for: `3600 / n`, `n` the samples of an object present
//!   all hour (the largest count of `kube_namespace_status_phase{phase="Active"}` over the
//!   namespaces, summed over every series of a namespace). This is exact for objects that
//!   exist the whole hour and within one interval for objects that start or stop inside it.
//!   `avg_over_time` would be wrong for partial hours. The queries return the sums in
//!   samples; the collector multiplies each hour by its [`sample_weight`] (only the `max` CPU
//!   basis, which compares requested with used seconds per container, weighs inside the query).
//! * Requests are constant over a pod's life, so `request × (Running samples × w)` equals the
//!   integral of `request × [phase = Running]` without a subquery (subqueries would fill gaps with
//!   the 5 minute lookback and bill stopped pods for up to 5 more minutes).
//! * Sample counts are **summed over series**, not taken per series: a kube-state-metrics pod
//!   replaced inside the hour (a rollout, an eviction) gives each series a new `instance`, and
//!   its two halves must add up to the hour rather than each pass for a half-hour gap.
//!   Replicas' samples add up the same way, and `n` counts them too, so `w` divides them back
//!   (two replicas at 30 s: 240 samples, 15 s each). Requested values (`avg_over_time`) are
//!   reduced with `max by` their identity, so replicas never add up there.
//! * A scrape gap of kube-state-metrics (all replicas missing scrapes) is compensated per hour
//!   by the same `3600 / n`. One query ([`namespace_samples`]) gives `n`, the scrape interval
//!   and the namespaces of every hour: the sample counts are read once, not once per
//!   dimension. One weight serves every namespace only when the same exporters write each at
//!   the same interval: the collector refuses an hour in which a namespace has more samples
//!   (in one series, or over all its series) than the typical one — a second exporter.

use std::time::Duration;

pub mod cpu;
pub mod devices;
pub mod gpu;
pub mod presence;
pub mod requests;
pub mod storage;
pub mod timeline;
pub mod windows;

pub use cpu::*;
pub use gpu::*;
pub use presence::*;
pub use requests::*;
pub use storage::*;
pub use timeline::*;
pub use windows::*;

#[cfg(test)]
mod tests;
