//! Requested resources integrated over the hour: the weight a sample stands for, in-place
//! resize segments, kube-state-metrics' container requests, the pod-level requests and overhead
//! Kubernetes adds, and kube-scheduler's own number (`kube_pod_resource_request`).

use super::*;

/// Seconds one gauge sample stands for in an hour whose object present all hour has
/// `observed` samples summed over every exporter's series: `3600 / n` (module documentation).
/// It compensates a scrape gap (fewer samples stand for more seconds), a kube-state-metrics
/// restart (two half series sum to a whole hour) and replicas (each sample stands for its
/// share) alike. The same arithmetic as [`sample_seconds`].
pub fn sample_weight(observed: f64) -> f64 {
    3600.0 / observed.max(1.0)
}

/// `open`, then each part on lines of its own indented two spaces (a part's own lines
/// included, so nested blocks indent further), then `close`: the PromQL we send reads like the
/// source that builds it.
pub(super) fn block(open: &str, parts: &[&str], close: &str) -> String {
    let mut s = String::from(open);
    for line in parts.iter().flat_map(|p| p.lines()) {
        s.push_str("\n  ");
        s.push_str(line);
    }
    s.push('\n');
    s.push_str(close);
    s
}

/// How a query weighs gauge samples inside itself: the seconds one kube-state-metrics sample
/// stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleWeight<'a> {
    /// The same in every hour of the span, computed by the collector with [`sample_weight`]
    /// from the sample counts it has read already: a constant in the query.
    Constant(f64),
    /// Computed for each hour inside the query from the sample counts (the hours of the span
    /// differ: a scrape gap), the same arithmetic as [`sample_weight`].
    PerHour,
    /// One hour scraped unevenly (an outage, a changed scrape interval): per [`Segment`] of
    /// it, its samples times the seconds one of them stands for there. A span of one hour.
    Segments(&'a [Segment]),
}

/// A stretch of one hour in which every kube-state-metrics sample stands for the same time:
/// the samples with timestamps in `[E - offset - len, E - offset)` (`E` the hour's end) each
/// stand for `seconds`. The segments of an hour partition it, so each sample is weighed once
/// (the collector's timeline module cuts them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub len_ms: u128,
    pub offset_ms: u128,
    pub seconds: f64,
}

/// Seconds one sample stands for in the hour, with the scrape-gap compensation (the
/// single-weight forms; [`gauge_sum`] writes the segmented one).
pub(super) fn sample_seconds(w: Windows, weight: SampleWeight) -> String {
    match weight {
        SampleWeight::Constant(secs) => format!("{secs}"),
        SampleWeight::PerHour | SampleWeight::Segments(_) => {
            let observed = format!("max(sum by (namespace) ({}))", namespace_phase_samples(w));
            format!("scalar(3600 / clamp_min({observed}, 1))")
        }
    }
}

/// Per `by`, the samples of the gauge `selector` in the hour: summed as they are (`None`: the
/// collector weighs each hour), times one weight, or per segment times its own weight (the
/// segments' sums told apart by a `segment` label under `or`, which would otherwise keep only
/// one of a series' segments).
pub(super) fn gauge_sum(
    w: Windows,
    selector: &str,
    by: &str,
    weigh: Option<SampleWeight>,
) -> String {
    let h = w.hour();
    match weigh {
        None => format!("sum by ({by}) (sum_over_time({selector}{h}))"),
        Some(SampleWeight::Segments(segments)) if !segments.is_empty() => {
            let mut parts = Vec::new();
            for (i, s) in segments.iter().enumerate() {
                if i > 0 {
                    parts.push("or".to_string());
                }
                parts.push(format!(
                    "label_replace(sum_over_time({selector}{}) * {}, \"segment\", \"{i}\", \"\", \"\")",
                    w.select(s.len_ms, s.offset_ms),
                    s.seconds
                ));
            }
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            block(&format!("sum by ({by}) ("), &parts, ")")
        }
        Some(weight) => format!(
            "(sum by ({by}) (sum_over_time({selector}{h})) * {})",
            sample_seconds(w, weight)
        ),
    }
}

/// Per container: the resource requested times the pod's Running samples, labels
/// `namespace, pod, uid, container` and those in `keep`, for the resources `matcher` selects.
/// `scope` narrows the pods' phases alike (a [`Namespaces`] matcher, or nothing). With
/// `weigh` ([`gauge_sum`]), in resource-seconds; without, the collector weighs each hour.
pub(super) fn requested(
    w: Windows,
    matcher: &str,
    scope: &str,
    keep: &str,
    weigh: Option<SampleWeight>,
) -> String {
    let request = |h: &str| {
        format!(
            "max by (namespace, pod, uid, container{keep}) \
             (avg_over_time(kube_pod_container_resource_requests{{{matcher}}}{h}))"
        )
    };
    request_times_running(
        w,
        weigh,
        scope,
        "namespace, pod, uid",
        &format!("namespace, pod, uid, container{keep}"),
        request,
    )
}

/// A pod's request (`request` of a window, labels `id` and more) times its Running samples in
/// the hour, weighed as `weigh` says ([`gauge_sum`]); `scope` narrows the phase's selector.
///
/// The request is the average of its samples, which is its average over time when every
/// sample stands for the same time: an in-place resize (KEP-1287) inside the hour is billed
/// for the time at each request. In an hour scraped unevenly ([`SampleWeight::Segments`])
/// the samples of different segments stand for different times, so each segment takes its
/// own request average and its own Running samples times its seconds, and the segments are
/// summed `by` (a resize before a hole would otherwise be weighed by the hole). The phase is
/// summed over every series of the pod, not `max`: the halves of a series split by a
/// kube-state-metrics restart add up, and replicas' samples add up to what the weight
/// (`3600 / n` over every series) divides back. Weighed per pod, before the join: pods are
/// fewer than their containers' requests (those of pods that did not run included), and the
/// scalar product costs per series.
/// The most segments one query averages requests over ([`request_times_running`]): each
/// segment repeats the request expression (about 3 KB for the pod model), and
/// VictoriaMetrics refuses a query over 16 KB (`-search.maxQueryLen`). An hour with more (two
/// holes, a hole and a retuned interval) is sent as several queries of at most this many
/// segments each ([`segment_parts`]), whose answers the collector adds up: each gives its
/// segments' part of the hour, and the queries that take this path sum over pods linearly.
pub const MAX_REQUEST_SEGMENTS: usize = 4;

/// `weigh` in parts of at most [`MAX_REQUEST_SEGMENTS`] segments, for the queries whose
/// answers add up over the hour's segments (the request basis, memory, GPUs): itself when it
/// is not segmented or is short enough.
pub fn segment_parts(weigh: Option<SampleWeight<'_>>) -> Vec<Option<SampleWeight<'_>>> {
    match weigh {
        Some(SampleWeight::Segments(s)) if s.len() > MAX_REQUEST_SEGMENTS => s
            .chunks(MAX_REQUEST_SEGMENTS)
            .map(|c| Some(SampleWeight::Segments(c)))
            .collect(),
        other => vec![other],
    }
}

pub(super) fn request_times_running(
    w: Windows,
    weigh: Option<SampleWeight>,
    scope: &str,
    id: &str,
    by: &str,
    request: impl Fn(&str) -> String,
) -> String {
    let phase = format!("kube_pod_status_phase{{phase=\"Running\"{scope}}}");
    match weigh {
        Some(SampleWeight::Segments(segments)) if !segments.is_empty() => {
            let mut parts = Vec::new();
            for (i, s) in segments.iter().enumerate() {
                if i > 0 {
                    parts.push("or".to_string());
                }
                let window = w.select(s.len_ms, s.offset_ms);
                parts.push(block(
                    "label_replace(",
                    &[
                        &request(&window),
                        &format!("* on ({id}) group_left ()"),
                        &format!(
                            "sum by ({id}) (sum_over_time({phase}{window})) * {}, \
                             \"segment\", \"{i}\", \"\", \"\")",
                            s.seconds
                        ),
                    ],
                    "",
                ));
            }
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            // In parentheses, like the other form: callers aggregate it as it is.
            block(
                "(",
                &[&block(&format!("sum by ({by}) ("), &parts, ")")],
                ")",
            )
        }
        _ => {
            let running = gauge_sum(w, &phase, id, weigh);
            block(
                "(",
                &[
                    &request(&w.hour()),
                    &format!("* on ({id}) group_left ()"),
                    &running,
                ],
                ")",
            )
        }
    }
}

/// A pod overhead metric of kube-state-metrics and the resource it is of.
#[derive(Debug, Clone, Copy)]
pub(super) struct Overhead {
    metric: &'static str,
    resource: &'static str,
}

pub(super) const CPU_OVERHEAD: Overhead = Overhead {
    metric: "kube_pod_overhead_cpu_cores",
    resource: "cpu",
};

pub(super) const MEMORY_OVERHEAD: Overhead = Overhead {
    metric: "kube_pod_overhead_memory_bytes",
    resource: "memory",
};

/// GiB-hours of memory requested per namespace (`--bill-memory`), by the request model, per
/// second a sample stands for: the same model as CPU, `resource="memory"` (bytes, kube-state-
/// metrics' `unit="byte"`) and `kube_pod_overhead_memory_bytes`.
/// `weigh` as for [`gpu`].
pub fn memory(w: Windows, model: RequestModel, weigh: Option<SampleWeight>) -> String {
    let matcher = "resource=\"memory\"";
    let requested = match model {
        RequestModel::Containers => requested(w, matcher, "", "", weigh),
        RequestModel::Pod => effective_requested(w, matcher, "", Some(MEMORY_OVERHEAD), weigh),
        RequestModel::Scheduler => scheduler_requested(w, matcher, "", weigh),
    };
    format!("sum by (namespace) {requested} / 3600 / 1073741824")
}

/// What a pod's request is and where it is read (`--cpu-request-model`, `--request-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestModel {
    /// What Kubernetes reserves, from kube-state-metrics: the pod's effective request from
    /// its containers' specs ([`effective_requested`]).
    Pod,
    /// The app containers' requests alone (the Go job, OpenCost).
    Containers,
    /// What Kubernetes reserves, as kube-scheduler publishes it (`--request-source
    /// scheduler`, [`scheduler_requested`]): `PodRequests` itself, pod-level requests and
    /// in-place resizes included.
    Scheduler,
}

/// kube-scheduler's per-pod request (`/metrics/resources`, STABLE since Kubernetes 1.29).
pub const SCHEDULER_METRIC: &str = "kube_pod_resource_request";

/// How long before an hour a pod's request is still taken from, when kube-scheduler wrote no
/// sample of it in the hour: a pod that ran at kube-state-metrics' first scrape of the hour
/// and ended before the scheduler's (which drops terminal pods), or one the scheduler's
/// restart hid. Prometheus's default lookback (`--query.lookback-delta`, 5 minutes), which
/// covers any scrape interval a control plane is scraped at.
pub(super) const SCHEDULER_CARRY_MS: u128 = 300_000;

/// Per pod (and `resource`, Kubernetes' own name: `nvidia.com/gpu`): the request
/// kube-scheduler publishes for the resources `matcher` selects, times the pod's Running
/// samples from kube-state-metrics (weighed as [`gauge_sum`] says), labels `namespace, pod,
/// resource`. `scope` narrows the selectors alike (a [`Namespaces`] matcher, or nothing).
///
/// What the metric is (pkg/scheduler/metrics/resources/resources.go, Kubernetes 1.35):
/// - every scheduler replica serves it from its own informer cache, leader or not, and a
///   second scheduler (another profile's binary) serves every pod too: the series of one pod
///   are copies, taken with `max by` the pod's identity, never summed;
/// - no `uid` label: the identity is `namespace, pod`, so the join with the phase (which has
///   `uid`) sums the Running samples of every pod of that name in the hour (a StatefulSet
///   pod replaced inside it: both halves, at the request of either, equal unless the new pod
///   asks for another);
/// - `node` is `spec.nodeName`, empty until the pod is bound: a pod's series changes at
///   binding, and `max by` joins the two;
/// - terminal pods (Succeeded, Failed) are left out, unscheduled ones are not: the join with
///   the Running phase bills neither;
/// - the value is `PodRequests` (k8s.io/component-helpers/resource, `UseStatusResources` with
///   in-place resize): pod-level requests replace the containers' (cpu, memory, hugepages),
///   sidecars and init containers as KEP-753 says, the overhead added, and a pending resize
///   counted as `max(spec, allocated, actual)`;
/// - zero quantities are not written: a BestEffort pod has no series.
///
/// The value is the average of the pod's samples in the hour (the request over the hour, for
/// a pod resized inside it), or the last one in the [`SCHEDULER_CARRY_MS`] before the hour
/// when the hour has none (a scheduler restart; a pod that ended early in the hour).
pub fn scheduler_requested(
    w: Windows,
    matcher: &str,
    scope: &str,
    weigh: Option<SampleWeight>,
) -> String {
    let id = "namespace, pod";
    let average = |h: &str| {
        format!("max by ({id}, resource) (avg_over_time({SCHEDULER_METRIC}{{{matcher}}}{h}))")
    };
    let before = format!(
        "max by ({id}, resource) (last_over_time({SCHEDULER_METRIC}{{{matcher}}}{}))",
        w.select(SCHEDULER_CARRY_MS, HOUR_MS)
    );
    let hour = block("(", &[&average(&w.hour()), "or", &before], ")");
    // A segment of an unevenly scraped hour without a scheduler sample takes the hour's.
    let request = |h: &str| {
        if h == w.hour() {
            hour.clone()
        } else {
            block("(", &[&average(h), "or", &hour], ")")
        }
    };
    request_times_running(w, weigh, scope, id, &format!("{id}, resource"), request)
}

/// Per pod (and `resource`): what Kubernetes reserves of the resources `matcher` selects,
/// times the pod's Running samples, labels `namespace, pod, uid, resource`. `scope` narrows
/// every selector alike (a [`Namespaces`] matcher, or nothing); with `overhead`, the pod
/// overhead is added (CPU: `kube_pod_overhead_cpu_cores`).
///
/// The effective request is `PodRequests` of k8s.io/component-helpers/resource (KEP-753,
/// "Exposing Pod Resource Requirements"): the larger of the app containers plus the native
/// sidecars (init containers with `restartPolicy: Always`, `restart_policy="Always"` on
/// `kube_pod_init_container_info` from kube-state-metrics 2.11), and of each ordinary init
/// container plus the sidecars started before it; plus the overhead. kube-state-metrics does
/// not give the init containers' order, so every sidecar is taken to start before every
/// ordinary init container, KEP-753's motivating order (a mesh proxy that the init containers
/// after it can use): exact then, and otherwise an overstatement only for a pod whose ordinary
/// init container, started before some sidecar, requests more than its app containers
/// (docs/billing.md). Names are unique across a pod's containers and init
/// containers, so the union of app containers and sidecars adds no request twice.
pub(super) fn effective_requested(
    w: Windows,
    matcher: &str,
    scope: &str,
    overhead: Option<Overhead>,
    weigh: Option<SampleWeight>,
) -> String {
    let id = "namespace, pod, uid";
    request_times_running(
        w,
        weigh,
        scope,
        id,
        &format!("{id}, resource"),
        |h: &str| effective_request(h, matcher, scope, overhead),
    )
}

/// Per pod and `resource`, its effective request over the window `h` (a range selector's
/// brackets and offset), labels `namespace, pod, uid, resource`: [`effective_requested`]'s
/// arithmetic, without the phase.
pub(super) fn effective_request(
    h: &str,
    matcher: &str,
    scope: &str,
    overhead: Option<Overhead>,
) -> String {
    let id = "namespace, pod, uid";
    let request = |metric: &str| {
        format!("max by ({id}, container, resource) (avg_over_time({metric}{{{matcher}}}{h}))")
    };
    let (app, init) = (
        request("kube_pod_container_resource_requests"),
        request("kube_pod_init_container_resource_requests"),
    );
    let sidecar_info = format!(
        "max by ({id}, container) (max_over_time(\
         kube_pod_init_container_info{{restart_policy=\"Always\"{scope}}}{h}))"
    );
    let sidecars = block(
        "(",
        &[
            &init,
            &format!("* on ({id}, container) group_left ()"),
            &sidecar_info,
        ],
        ")",
    );
    let ordinary = block(
        "(",
        &[
            &init,
            &format!("unless on ({id}, container)"),
            &sidecar_info,
        ],
        ")",
    );
    let main = block(
        &format!("sum by ({id}, resource) ("),
        &[&app, "or", &sidecars],
        ")",
    );
    // Each ordinary init container with every sidecar of its pod (or alone, in a pod without).
    let all_sidecars = block(&format!("sum by ({id}, resource) ("), &[&sidecars], ")");
    let during_init = block(
        "(",
        &[
            &ordinary,
            &format!("+ on ({id}, resource) group_left ()"),
            &all_sidecars,
            "or",
            &ordinary,
        ],
        ")",
    );
    let mut effective = block(
        &format!("max by ({id}, resource) ("),
        &[&main, "or", &during_init],
        ")",
    );
    if let Some(Overhead { metric, resource }) = overhead {
        // Added as one more part of the pod (labelled apart, so that `or` keeps it beside the
        // containers' part), not with `+ … or …`, which would read the requests twice.
        let selector = match scope.trim_start_matches(", ") {
            "" => metric.to_string(),
            m => format!("{metric}{{{m}}}"),
        };
        let overhead = format!(
            "label_replace(label_replace(max by ({id}) (avg_over_time({selector}{h})), \
             \"resource\", \"{resource}\", \"\", \"\"), \"part\", \"overhead\", \"\", \"\")"
        );
        effective = block(
            &format!("sum by ({id}, resource) ("),
            &[&effective, "or", &overhead],
            ")",
        );
    }
    effective
}

/// The Running pods whose requests the kube-state-metrics source does not see (pod-level
/// `spec.resources`, KEP-2837, which kube-state-metrics through v2.20 does not export), at
/// the instant before the hour's end (the newest sample of every series in the 5 minutes
/// before it), labels `namespace, pod` and `via`, by the cheapest evidence the store holds:
///
/// - `via="scheduler"`, with `scheduler` (kube-scheduler's `kube_pod_resource_request` is in
///   the store): its CPU request exceeds everything the pod's containers request together
///   (app and init containers summed, plus the overhead), which no container-level
///   arithmetic reaches: a pod-level request larger than the containers' (a pod whose
///   containers request nothing included), or a pending in-place resize down (counted at the
///   old request until the kubelet admits it). CPU alone: reading memory too costs as much
///   again, and a pod-level memory request without a CPU one is rare; `check` compares both.
///   Pods the scheduler counts are not terminal; a pending one is included (it holds its
///   node's resources, though it is not billed).
/// - `via="qos"`, without it: Kubernetes gave the pod a QoS class other than BestEffort
///   (`kube_pod_status_qos_class`), which takes a cpu or memory request or limit somewhere in
///   the pod (`GetPodQOS`), and no container or init container requests either: the request
///   is the pod's own.
///
/// Reading a family costs Prometheus about the same per series whether the window is 5
/// minutes or an hour (docs/performance.md), so each form reads each family once and the
/// bound is a sum, not the effective request's arithmetic.
pub fn unseen_requests(scheduler: bool) -> String {
    let now = "[5m] offset 1ms";
    let id = "namespace, pod";
    let requests = |by: &str, resources: &str| {
        format!(
            "max by ({by}) (last_over_time({{__name__=~\"kube_pod_container_resource_requests|kube_pod_init_container_resource_requests\", resource=~\"{resources}\"}}{now}))"
        )
    };
    let evidence = if scheduler {
        let scheduled = format!(
            "max by ({id}, resource) (last_over_time({SCHEDULER_METRIC}{{resource=\"cpu\"}}{now}))"
        );
        let overhead = format!(
            "label_replace(max by ({id}) (last_over_time({}{now})), \"part\", \"overhead\", \"\", \"\")",
            CPU_OVERHEAD.metric
        );
        // Every container's CPU request (replicas' copies taken once), summed per pod with
        // the overhead, and 0 for every pod the scheduler counts (so a pod whose containers
        // request nothing compares with 0).
        let bound = block(
            &format!("sum by ({id}) ("),
            &[
                &requests(&format!("{id}, container"), "cpu"),
                "or",
                &overhead,
                "or",
                &format!("{scheduled} * 0"),
            ],
            ")",
        );
        block(
            "label_replace(",
            &[
                &scheduled,
                &format!("> on ({id}) group_left ()"),
                "(",
                &bound,
                "* 1.001 + 0.001",
                ")",
                ", \"via\", \"scheduler\", \"\", \"\")",
            ],
            "",
        )
    } else {
        block(
            "label_replace(",
            &[
                &format!(
                    "max by ({id}) (last_over_time(kube_pod_status_qos_class{{qos_class!=\"BestEffort\"}}{now})) > 0"
                ),
                &format!("unless on ({id})"),
                &format!("{} > 0", requests(id, "cpu|memory")),
                ", \"via\", \"qos\", \"\", \"\")",
            ],
            "",
        )
    };
    if scheduler {
        // The scheduler counts no terminal pod; a pending one it counts holds its node's
        // resources too, and the phase is not read again for it.
        return block(&format!("group by ({id}, via) ("), &[&evidence], ")");
    }
    let running = format!(
        "max by ({id}) (last_over_time(kube_pod_status_phase{{phase=\"Running\"}}{now})) > 0"
    );
    block(
        &format!("group by ({id}, via) ("),
        &[&evidence, &format!("and on ({id})"), &running],
        ")",
    )
}

/// Per hour, the pods kube-state-metrics shows Running with a request (a QoS class other than
/// BestEffort) of which kube-scheduler wrote no sample in the hour nor in the
/// [`SCHEDULER_CARRY_MS`] before it: [`scheduler_requested`] would bill them nothing. Every
/// scheduler replica writes every pod of its cache until the pod is terminal, so such a pod
/// was hidden by a hole in every replica's scrapes for its whole life in the hour, or belongs
/// to a cache nobody scrapes. Labels `namespace, pod`.
pub fn unseen_by_scheduler(w: Windows) -> String {
    let h = w.hour();
    let with_carry = w.select(HOUR_MS + SCHEDULER_CARRY_MS, 0);
    block(
        "group by (namespace, pod) (",
        &[
            &format!(
                "max by (namespace, pod) (max_over_time(kube_pod_status_phase{{phase=\"Running\"}}{h})) > 0"
            ),
            "and on (namespace, pod)",
            &format!(
                "max by (namespace, pod) (max_over_time(kube_pod_status_qos_class{{qos_class!=\"BestEffort\"}}{h})) > 0"
            ),
            "unless on (namespace, pod)",
            &format!("group by (namespace, pod) (count_over_time({SCHEDULER_METRIC}{with_carry}))"),
        ],
        ")",
    )
}
