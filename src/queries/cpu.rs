//! CPU: requested, used (cAdvisor's counters) or the larger of both, per namespace.
//!
//! **CPU usage counters** are telescoped from sample values, which mean the same on every
//! engine, never from `increase()`, whose extrapolation differs between engines (Prometheus
//! extrapolates to the window's edges, VictoriaMetrics uses the sample before the window).
//! With `L`, `Lp` the last values in this hour and the hour before, `D` the resets after
//! `Lp` (`resets` over both hours minus `resets` over the hour before: VictoriaMetrics'
//! `resets` also counts the pair that straddles the window's start, and that pair cancels in
//! the difference), and `F` the first value of the hour (a window one scrape interval long at
//! the hour's start):
//! - `D = 0`: `L − Lp`. Consecutive hours sum exactly to the span's total.
//! - `D = 1`, `F < Lp` (the reset fell between the hours): `L`, the counter since the reset.
//! - `D = 1`, an inner reset: `(max − Lp) + L`, the climb to the value before the reset plus
//!   the counter since it, when the maximum is that pre-reset value (`max > L`).
//! - no `Lp` (a counter born in the hour or seen for the first time): `L − min`, plus `min`
//!   when the first value is small next to the hour's climb (the counter started from zero
//!   in this hour).
//! - otherwise (several resets, or a counter that climbed above its pre-reset value within
//!   the hour after an inner reset): `increase()`, the only engine-dependent estimate.
//!   Kubernetes gives a restarted container a new cAdvisor series, so same-series resets
//!   come from cAdvisor or node restarts, and two in one hour are rarer still.
//!
//! **Counters are read in two parts.** PromQL has no shared sub-expressions: every mention of
//! a selector reads its samples again, and the case analysis above mentions the hour's
//! counters 22 hour-reads' worth. Yet a reset inside an hour is rare (see above), and without
//! one the cases collapse. So one cheap query ([`fallen_counters`], one hour-read) lists the
//! namespaces with a counter whose `resets` over the hour is non-zero; their CPU is read with
//! the full case analysis ([`Counters::Exact`], [`Namespaces::Only`]: a label matcher, so
//! only their series are read; the collector sends them in parts of at most 16,000 bytes,
//! under VictoriaMetrics' default `-search.maxQueryLen`), every other namespace's with the
//! steady form ([`Counters::Steady`], five hour-reads): with `m` the hour's minimum, which
//! is its first value when nothing fell within the hour, `L − Lp` when `m ≥ Lp`, `L` when
//! `m < Lp` (the reset fell between the hours), and the born case as above, summed per
//! namespace (per container for the `max` basis) as `Σ L − Σ X`, one expression giving
//! every series' starting value `X` (`used_seconds_steady`). The steady query covers every
//! namespace and the collector drops its answer for the listed ones: excluding them in the
//! query (`namespace!~"a|b|…"`) costs Prometheus more regular-expression matching per
//! selector than reading their few series (docs/performance.md). So each
//! namespace is billed from exactly one part, and the split does not rely on what an engine's
//! `resets` counts: on VictoriaMetrics, whose `resets` also counts a fall at the window's
//! start, such a namespace simply takes the exact part. The exact part itself is usually not
//! PromQL: the listed namespaces' counters are read as raw samples ([`counter_samples`], one
//! read) and [`crate::counters`] applies these definitions, with every climb counted instead
//! of `increase()`; [`Counters::Exact`] serves spans whose samples would be too many, and
//! `--fallen-counters queries`.

use super::*;

/// How CPU is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuBasis {
    /// Core-hours requested by the containers of Running pods (kube-state-metrics).
    Request,
    /// Core-hours used (cAdvisor `container_cpu_usage_seconds_total`).
    Usage,
    /// Per container, the larger of request and usage (the allocation OpenCost bills).
    Max,
}

/// How usage counters are read (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counters {
    /// Only for namespaces none of whose counters fell within the hour ([`fallen_counters`]):
    /// the climb since the hour before, the counter since a reset between the hours, or a
    /// counter born in the hour.
    Steady,
    /// Every case, resets within the hour included. The scrape interval places the window of a
    /// counter's first value in the hour ([`Windows::hour_start`]).
    Exact { interval: Duration },
}

/// What a CPU query reads, by basis: each variant carries only what its query uses, so no
/// caller passes a value the query ignores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuRead<'a> {
    /// The `request` basis: requests by the model given, per second a sample stands for (the
    /// collector weighs each hour with [`sample_weight`]), or weighed inside the query with
    /// the weight given (an unevenly scraped hour).
    Requested(RequestModel, Option<SampleWeight<'a>>),
    /// The `usage` basis: the usage counters, read as given.
    Used(Counters),
    /// The `max` basis: per container, the larger of its requests, weighed inside the query
    /// with the weight given, and its usage, read as given.
    Larger(SampleWeight<'a>, Counters),
}

/// The namespaces a CPU query covers, by label matcher. The names are namespace names
/// (the collector checks them), so they need no escaping in a regular expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespaces<'a> {
    All,
    Only(&'a [String]),
    /// One of two halves of every namespace, by the last character of its name (`0`–`4`,
    /// `a`–`m`, or any other): a regular expression and its negation, so each namespace is in
    /// exactly one half on every engine.
    Half(Half),
}

/// A half of the namespaces ([`Namespaces::Half`]).
///
/// Why halves: Prometheus evaluates one query on about one core, so the largest CPU query is
/// the run's critical path; its two halves, sent side by side, take about two thirds of its
/// wall time for about the same CPU (docs/performance.md). Every operation
/// of a CPU query stays within a namespace (joins on pods, sums by namespace), so a half's
/// answer is its namespaces' part of the whole one. Matching the expression costs little: it
/// runs once per label value, not per series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    First,
    Second,
}

impl Half {
    pub const BOTH: [Half; 2] = [Half::First, Half::Second];
}

/// The namespaces of [`Half::First`]: about half of typical names (a digit or a letter), and
/// of the synthetic clusters' `tenant-NNNNN`.
pub(super) const FIRST_HALF: &str = ".*[0-4a-m]";

impl Namespaces<'_> {
    /// The matcher to add to a selector's braces (with its leading comma), or nothing.
    fn matcher(self) -> String {
        match self {
            Namespaces::All => String::new(),
            Namespaces::Only(n) => format!(", namespace=~\"{}\"", n.join("|")),
            Namespaces::Half(Half::First) => format!(", namespace=~\"{FIRST_HALF}\""),
            Namespaces::Half(Half::Second) => format!(", namespace!~\"{FIRST_HALF}\""),
        }
    }
}

/// The usage counter of every container, in the namespaces `scope` matcher selects.
pub(super) fn usage_counter(scope: &str) -> String {
    format!(r#"container_cpu_usage_seconds_total{{container!="", container!="POD"{scope}}}"#)
}

/// The namespaces with a usage counter that fell within an hour (`resets` over the hour is
/// non-zero): their CPU takes [`Counters::Exact`], everyone else's [`Counters::Steady`].
pub fn fallen_counters(w: Windows) -> String {
    format!(
        "group by (namespace) (resets({}{}) > 0)",
        usage_counter(""),
        w.hour()
    )
}

/// CPU-seconds used in the hour, per `by` (`namespace`, or `namespace, pod, container` for the
/// `max` basis), for namespaces none of whose counters fell within the hour
/// ([`Counters::Steady`]): the per-series steady form as two sums, `Σ L − Σ X`, where `X` is
/// what a series' climb starts from: `Lp` when the counter did not fall between the hours
/// (`Lp ≤ m`), `m` for a born counter that did not start from zero (`2m > L`), else nothing.
/// One expression gives `X` for both: `(Lp or m > L / 2) <= m` (a born counter's `m` passes
/// `<= m` always, a counter with `Lp` never takes the born branch, and `m > L / 2` is `2m > L`
/// exactly: halving a float is exact).
///
/// Prometheus's cost is about one pass per selector mention (whatever the window's length),
/// and about as much per operation between two per-series vectors and per `label_replace` of
/// one (docs/performance.md). The per-series form (`L − (Lp·[m ≥ Lp] or m·[2m > L])`)
/// takes 7 mentions and 6 operations; this one 5 and 3. The two sums meet in one `sum by`, so
/// they must stay apart under `or`: the first is labelled `part`, the second keeps the
/// series' `id`. Each is deduplicated (a series scraped by two jobs) with `max` after the
/// operations between its own series, not before each mention: about a third less CPU than
/// three sums each labelled and deduplicated mention by mention.
pub(super) fn used_seconds_steady(w: Windows, scope: &str, by: &str) -> String {
    let c = usage_counter(scope);
    let (h, p) = (w.hour(), w.previous_hour());
    let each = "max by (namespace, pod, container, id)";
    let last = format!("last_over_time({c}{h})");
    let last_prev = format!("last_over_time({c}{p})");
    let min = format!("min_over_time({c}{h})");
    let parts = [
        format!("label_replace(sum by ({by}) ({each} ({last})), \"part\", \"last\", \"\", \"\")"),
        "or".to_string(),
        format!("-{each} (({last_prev} or {min} > {last} / 2) <= {min})"),
    ];
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    block(&format!("sum by ({by}) ("), &parts, ")")
}

/// Per container series: CPU-seconds used in the hour with every case of the module
/// documentation ([`Counters::Exact`]), labels `namespace, pod, container, id`.
pub(super) fn used_seconds_exact(w: Windows, interval: Duration, scope: &str) -> String {
    let c = usage_counter(scope);
    let (h, p, two, start) = (
        w.hour(),
        w.previous_hour(),
        w.two_hours(),
        w.hour_start(interval),
    );
    let last = format!("last_over_time({c}{h})");
    let last_prev = format!("last_over_time({c}{p})");
    let min = format!("min_over_time({c}{h})");
    // No hour before: the climb in the hour (L − m), plus the first value m if it started from
    // zero (m ≤ L − m): L, or L − m when 2m > L.
    let born_start = format!("{min} * (2 * {min} > bool {last})");
    let resets_after_prev = format!("(resets({c}{two}) - resets({c}{p}))");
    let max = format!("max_over_time({c}{h})");
    let first = format!("min_over_time({c}{start})");
    // D = 0: the climb since the hour before.
    let no_reset = format!("(({last} - {last_prev}) and ({resets_after_prev} == 0))");
    // D = 1: the counter since the reset, plus, when the reset was inside the hour (F ≥ Lp) and
    // the maximum is the value before it (M > L), the climb to that value. Both cases in one
    // expression, so that D, the costliest part (three hours of samples), is read once for them.
    let one_reset = format!(
        "(({last} + ({max} - {last_prev}) * ({first} >= bool {last_prev})) \
         and ({resets_after_prev} == 1) and (({first} < {last_prev}) or ({max} > {last})))"
    );
    let born = format!(
        "(({last} - {born_start}) \
         unless {last_prev} and (resets({c}{h}) == 0))"
    );
    let otherwise = format!("increase({c}{h})");
    block(
        "max by (namespace, pod, container, id) (",
        &[&no_reset, "or", &one_reset, "or", &born, "or", &otherwise],
        ")",
    )
}

/// Core-hours per namespace of the namespaces in `namespaces`, read as `read` says (the
/// `request` basis per second a sample stands for).
pub fn cpu(w: Windows, read: CpuRead, namespaces: Namespaces) -> String {
    let scope = namespaces.matcher();
    // Per `by`: the whole case analysis per series, summed, or the steady form.
    let used = |counters: Counters, by: &str| match counters {
        Counters::Steady => used_seconds_steady(w, &scope, by),
        Counters::Exact { interval } => block(
            &format!("sum by ({by}) ("),
            &[&used_seconds_exact(w, interval, &scope)],
            ")",
        ),
    };
    match read {
        CpuRead::Requested(RequestModel::Pod, weigh) => cpu_requested_by_pods(w, namespaces, weigh),
        CpuRead::Requested(RequestModel::Scheduler, weigh) => format!(
            "sum by (namespace) {} / 3600",
            scheduler_requested(w, &format!("resource=\"cpu\"{scope}"), &scope, weigh)
        ),
        CpuRead::Requested(RequestModel::Containers, weigh) => format!(
            "sum by (namespace) {} / 3600",
            requested(w, &format!("resource=\"cpu\"{scope}"), &scope, "", weigh)
        ),
        CpuRead::Used(counters) => format!("{} / 3600", used(counters, "namespace")),
        CpuRead::Larger(weight, counters) => {
            // Requests keep `uid` and `resource` (always there: the selector names it), usage
            // has neither, so `or` keeps both sides of every container without relabelling
            // either (each a pass over every container), and `max by` takes
            // the larger. A pod name reused within the hour (a new uid) counts its larger
            // request, as before.
            let request = requested_cpu_weighed(w, weight, &scope);
            let usage = used(counters, "namespace, pod, container");
            let larger = block(
                "max by (namespace, pod, container) (",
                &[&request, "or", &usage],
                ")",
            );
            block("sum by (namespace) (", &[&larger], ") / 3600")
        }
    }
}

/// The CPU query of the namespaces `namespaces` that reads nothing the sample counts give (the
/// scrape interval, the weight, the namespaces whose counters fell), so that it can be sent
/// beside them: the request basis', and the usage basis' steady form. `None` for the `max`
/// basis, which weighs requests inside its query.
pub fn cpu_before_counts(
    w: Windows,
    basis: CpuBasis,
    model: RequestModel,
    weigh: Option<SampleWeight>,
    namespaces: Namespaces,
) -> Option<String> {
    let read = match basis {
        CpuBasis::Request => CpuRead::Requested(model, weigh),
        CpuBasis::Usage => CpuRead::Used(Counters::Steady),
        CpuBasis::Max => return None,
    };
    Some(cpu(w, read, namespaces))
}

/// The request basis with [`RequestModel::Pod`]: core-hours per namespace of the pods'
/// effective CPU requests ([`effective_requested`]), per second a sample stands for.
pub(super) fn cpu_requested_by_pods(
    w: Windows,
    namespaces: Namespaces,
    weigh: Option<SampleWeight>,
) -> String {
    let scope = namespaces.matcher();
    let pods = effective_requested(
        w,
        &format!("resource=\"cpu\"{scope}"),
        &scope,
        Some(CPU_OVERHEAD),
        weigh,
    );
    format!("sum by (namespace) {pods} / 3600")
}

/// The raw samples of the usage counters of the namespaces `namespaces` in the `hours` hours
/// ending at the evaluation time and the hour before them, for [`crate::counters`]: one read,
/// evaluated once at the last hour's end by an instant query.
pub fn counter_samples(w: Windows, hours: usize, namespaces: Namespaces) -> String {
    let hours = u128::try_from(hours).unwrap_or(u128::MAX).saturating_add(1);
    format!(
        "{}{}",
        usage_counter(&namespaces.matcher()),
        w.select(hours.saturating_mul(HOUR_MS), 0)
    )
}

/// Per container (`namespace, pod, container`) of the namespaces `namespaces`, the CPU-seconds
/// requested in the hour, weighed inside the query as the `max` basis does: the request side
/// of that basis, for the containers whose usage [`crate::counters`] computes.
pub fn requested_cpu_seconds(w: Windows, weight: SampleWeight, namespaces: Namespaces) -> String {
    let requested = requested_cpu_weighed(w, weight, &namespaces.matcher());
    format!("max by (namespace, pod, container) {requested}")
}

/// The `max` basis' request side: per container (and `uid`, `resource`), CPU-seconds requested,
/// weighed inside the query, in the namespaces `scope` selects.
pub(super) fn requested_cpu_weighed(w: Windows, weight: SampleWeight, scope: &str) -> String {
    requested(
        w,
        &format!("resource=\"cpu\"{scope}"),
        scope,
        ", resource",
        Some(weight),
    )
}
