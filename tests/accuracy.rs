//! The dry-run against a real Prometheus and a real VictoriaMetrics loaded with the same
//! synthetic clusters equals the ground truth on both: exact (1e-6) for every namespace-hour
//! where nothing changed, within one scrape interval's worth of each changed object otherwise.
//! Prometheus 2.42 has closed range windows, VictoriaMetrics left-open ones (as Prometheus 3.x)
//! and its own `resets`/`increase`; the job detects which and must be exact on both.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Outcome, TestPrometheus, bin, rfc3339, run, standard, truth};
use consumption_metrics_synth::scenario::Options;
use consumption_metrics_synth::truth::TruthRow;
use serde_json::Value;

const CLUSTER: &str = "synth-01";
const EXACT: f64 = 1e-6;

/// A second cluster: another scrape interval, seed and size, so that nothing fits one data set;
/// one replica and cAdvisor are scraped exactly on the tick, so a sample falls on every hour
/// boundary and must be counted in one hour only.
fn other() -> &'static TestPrometheus {
    static P: std::sync::OnceLock<TestPrometheus> = std::sync::OnceLock::new();
    P.get_or_init(|| common::start_prometheus("other", &other_options()))
}

fn other_options() -> Options {
    Options {
        interval: 15,
        seed: 7,
        random_namespaces: 150,
        hours: 5,
        ksm_offsets: vec![0, 13],
        cadvisor_offset: 0,
        shared_gpus: true,
        ..Options::default()
    }
}

/// The standard cluster in VictoriaMetrics.
fn standard_vm() -> &'static TestPrometheus {
    static P: std::sync::OnceLock<TestPrometheus> = std::sync::OnceLock::new();
    P.get_or_init(|| common::start_victoria_metrics("standard-vm", &Options::default()))
}

/// The second cluster (scrapes exactly on the hour) in VictoriaMetrics.
fn other_vm() -> &'static TestPrometheus {
    static P: std::sync::OnceLock<TestPrometheus> = std::sync::OnceLock::new();
    P.get_or_init(|| common::start_victoria_metrics("other-vm", &other_options()))
}

fn dry_run(basis: &str, extra: &[&str]) -> Vec<Value> {
    dry_run_on(standard(), basis, extra)
}

fn dry_run_on(p: &TestPrometheus, basis: &str, extra: &[&str]) -> Vec<Value> {
    dry_run_logged(p, basis, extra).0
}

/// The messages of a dry-run of every truth hour, and its log.
fn dry_run_logged(p: &TestPrometheus, basis: &str, extra: &[&str]) -> (Vec<Value>, String) {
    let since = rfc3339(p.dataset.first_truth_hour);
    let until = rfc3339(p.dataset.data_end);
    let out = run(bin()
        .args([
            "--prometheus-url",
            &p.url,
            "--cluster-name",
            CLUSTER,
            "--dry-run",
        ])
        .args([
            "--since",
            &since,
            "--until",
            &until,
            "--now",
            "2026-11-02T00:00:00Z",
        ])
        .args([
            "--storage-tier",
            "gold=premium",
            "--storage-tier",
            "cephfs=basic",
        ])
        .args(["--cpu-basis", basis])
        // The second cluster has a time-sliced GPU, billed at 1/4 in its truth.
        .args(["--gpu-resource", "nvidia.com/gpu.shared=1/4"])
        .args(extra));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let messages: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    (
        messages.as_array().expect("a JSON array").clone(),
        out.stderr,
    )
}

/// (hour start, namespace) → consumption object.
fn by_namespace_hour(messages: &[Value]) -> BTreeMap<(i64, String), Value> {
    common::by_namespace_hour(messages, CLUSTER)
}

fn tiered(row: &TruthRow) -> [f64; 4] {
    let mut s = [0.0; 4]; // rwo_standard, rwx_standard, rwx_basic, rwx_premium
    for (key, v) in &row.storage {
        let (class, mode) = key.split_once('|').unwrap();
        let i = match (mode, class) {
            ("rwo", _) => 0,
            (_, "gold") => 3,
            (_, "cephfs") => 2,
            _ => 1,
        };
        s[i] += v;
    }
    s
}

fn excluded(ns: &str) -> bool {
    ns.starts_with("kube-") || ns.starts_with("openshift-")
}

/// Compare every namespace-hour; returns the largest error seen where exactness was required.
fn check(basis: &str, messages: &[Value]) -> f64 {
    check_on(standard(), basis, messages)
}

fn check_on(p: &TestPrometheus, basis: &str, messages: &[Value]) -> f64 {
    check_truth(truth(p), basis, messages)
}

/// Compare every namespace-hour with `truth`; returns the largest error seen where exactness
/// was required.
fn check_truth(truth: Vec<TruthRow>, basis: &str, messages: &[Value]) -> f64 {
    let got = by_namespace_hour(messages);
    let rows: Vec<TruthRow> = truth
        .into_iter()
        .filter(|r| !excluded(&r.namespace))
        .collect();
    let expected: BTreeSet<_> = rows.iter().map(|r| (r.hour, r.namespace.clone())).collect();
    let seen: BTreeSet<_> = got.keys().cloned().collect();
    assert_eq!(
        seen, expected,
        "billed namespace-hours differ from the truth"
    );

    let mut failures = Vec::new();
    let mut worst_exact: f64 = 0.0;
    for r in &rows {
        let c = &got[&(r.hour, r.namespace.clone())];
        let (cpu, cpu_tol) = match basis {
            "request" => (r.cpu_request, r.tol_cpu_request),
            "usage" => (r.cpu_usage, r.tol_cpu_usage),
            _ => (r.cpu_max, r.tol_cpu_max),
        };
        let st = tiered(r);
        let checks = [
            ("cpu", cpu, cpu_tol),
            ("gpu", r.gpu, r.tol_gpu),
            ("storage_rwo_standard", st[0], r.tol_storage),
            ("storage_rwx_standard", st[1], r.tol_storage),
            ("storage_rwx_basic", st[2], r.tol_storage),
            ("storage_rwx_premium", st[3], r.tol_storage),
        ];
        for (key, want, tol) in checks {
            let have = c[key].as_f64().unwrap();
            let err = (have - want).abs();
            if tol == 0.0 {
                worst_exact = worst_exact.max(err);
            }
            if err > tol + EXACT {
                failures.push(format!(
                    "{} {} {key}: got {have}, truth {want:.6}, error {err:.6} > tolerance {tol:.6}",
                    rfc3339(r.hour),
                    r.namespace
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{basis}: {} errors:\n{}",
        failures.len(),
        failures.join("\n")
    );
    worst_exact
}

fn validate(messages: &[Value]) {
    let validator = common::schema_validator();
    for m in messages {
        let errors: Vec<String> = validator.iter_errors(m).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "message fails the schema: {errors:?}\n{m}"
        );
    }
}

#[test]
fn request_basis_matches_the_truth() {
    let messages = dry_run("request", &[]);
    validate(&messages);
    let worst = check("request", &messages);
    eprintln!("request basis: largest error where exact was required: {worst:e}");
}

#[test]
fn usage_basis_matches_the_truth() {
    let messages = dry_run("usage", &[]);
    validate(&messages);
    let worst = check("usage", &messages);
    eprintln!("usage basis: largest error where exact was required: {worst:e}");
}

#[test]
fn max_basis_matches_the_truth() {
    let messages = dry_run("max", &[]);
    validate(&messages);
    let worst = check("max", &messages);
    eprintln!("max basis: largest error where exact was required: {worst:e}");
}

/// One query per hour or one per span: the same numbers, byte for byte (the `max` basis
/// weighs one-hour spans with a constant, and spans with a scrape gap inside the query).
#[test]
fn span_size_does_not_change_the_result() {
    for basis in ["request", "usage", "max"] {
        let whole = by_namespace_hour(&dry_run(basis, &["--hours-per-query", "24"]));
        let hourly = by_namespace_hour(&dry_run(basis, &["--hours-per-query", "1"]));
        assert_eq!(whole.len(), hourly.len());
        let diffs: Vec<String> = whole
            .iter()
            .filter(|(k, v)| hourly.get(*k) != Some(*v))
            .map(|((h, ns), v)| {
                format!(
                    "{} {ns}: {v} vs {:?}",
                    rfc3339(*h),
                    hourly.get(&(*h, ns.clone()))
                )
            })
            .collect();
        assert!(diffs.is_empty(), "{basis}: {}", diffs.join("\n"));
    }
}

/// Usage counters are telescoped: over the span, every namespace's hours add up to its total
/// within one scrape interval of each object that started, stopped or restarted in the span,
/// not one per hour.
#[test]
fn usage_hours_add_up_to_the_span_total() {
    let got = by_namespace_hour(&dry_run("usage", &[]));
    let mut totals: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for r in truth(standard())
        .into_iter()
        .filter(|r| !excluded(&r.namespace))
    {
        let t = totals.entry(r.namespace.clone()).or_default();
        t.0 += got[&(r.hour, r.namespace.clone())]["cpu"].as_f64().unwrap();
        t.1 += r.cpu_usage;
        t.2 = t.2.max(r.tol_cpu_usage);
    }
    for (ns, (have, want, tol)) in totals {
        // Rounding: up to 5e-7 per hour.
        assert!(
            (have - want).abs() <= 2.0 * tol + 5e-6,
            "{ns}: hours sum to {have}, truth over the span {want}, allowed {tol}"
        );
    }
}

#[test]
fn another_cluster_at_15s_matches_the_truth() {
    for basis in ["request", "usage", "max"] {
        let messages = dry_run_on(other(), basis, &[]);
        validate(&messages);
        let worst = check_on(other(), basis, &messages);
        eprintln!("15s cluster, {basis} basis: largest error where exact was required: {worst:e}");
    }
}

/// One kube-state-metrics replica (OpenShift's default) whose pod is replaced twice inside
/// hours (a rollout at 02:30, an eviction at 04:15): no scrape is missed, but every series
/// continues under a new `instance`. Its halves must add up to the hour, not each be taken
/// for a half-hour scrape gap (which billed every object starting or stopping in the hour up
/// to twice). Prometheus and VictoriaMetrics, every basis, the truth's tolerances.
fn restarted_options() -> Options {
    Options {
        seed: 23,
        random_namespaces: 40,
        ksm_offsets: vec![7],
        ksm_restarts: vec![2.5, 4.25],
        ..Options::default()
    }
}

#[test]
fn a_kube_state_metrics_restart_inside_an_hour_bills_the_truth() {
    let prometheus = common::start_prometheus("restarted", &restarted_options());
    let vm = common::start_victoria_metrics("restarted-vm", &restarted_options());
    for (name, p) in [("Prometheus", &prometheus), ("VictoriaMetrics", &vm)] {
        for basis in ["request", "usage", "max"] {
            let messages = dry_run_on(p, basis, &[]);
            validate(&messages);
            let worst = check_on(p, basis, &messages);
            eprintln!("restarted, {name}, {basis} basis: largest error where exact: {worst:e}");
        }
    }
}

/// A tenant's own kube-state-metrics behind the same store (`job="tenant-kube-state-metrics"`),
/// writing one namespace's phase every 10 s: it is not the platform's exporter, so it changes
/// no bill (every namespace-hour equals the truth) and refuses nothing. Believed anyway
/// (`--kube-state-metrics-selector ''`), it would set the interval for everyone; one sample
/// weight cannot serve both, so such a run stops before billing and names the namespace and
/// the query that finds the exporters.
#[test]
fn a_tenants_exporter_changes_no_bill_and_a_believed_one_is_refused() {
    let opts = Options {
        seed: 29,
        random_namespaces: 10,
        second_exporter: Some(("team-steady".into(), 10)),
        ..Options::default()
    };
    let p = common::start_prometheus("second-exporter", &opts);
    let hour = |basis: &str, extra: &[&str]| {
        run(bin()
            .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
            .args(["--dry-run", "--now", "2026-11-02T00:00:00Z"])
            .args([
                "--since",
                "2026-11-01T02:00:00Z",
                "--until",
                "2026-11-01T03:00:00Z",
            ])
            .args(["--cpu-basis", basis])
            .args([
                "--storage-tier",
                "gold=premium",
                "--storage-tier",
                "cephfs=basic",
            ])
            .args(extra))
    };
    for basis in ["request", "max"] {
        let out = hour(basis, &[]);
        assert_eq!(out.code, 0, "{basis}: {}", out.stderr);
        let messages: Value = serde_json::from_str(&out.stdout).unwrap();
        let truth: Vec<TruthRow> = truth(&p)
            .into_iter()
            .filter(|r| r.hour == opts.start + 2 * 3600)
            .collect();
        check_truth(truth, basis, messages.as_array().unwrap());
        let out = hour(basis, &["--kube-state-metrics-selector", ""]);
        assert_eq!(out.code, 4, "{basis}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        for needle in [
            "believed from every job",
            "namespace team-steady has 360 samples",
            "in one series",
            "count by (job, instance)",
        ] {
            assert!(out.stderr.contains(needle), "{needle:?} in {}", out.stderr);
        }
    }
}

/// VictoriaMetrics, both clusters (scrapes offset from the hour, and exactly on it), all three
/// bases: the same tolerances as on Prometheus. The job must detect left-open windows.
#[test]
fn victoria_metrics_matches_the_truth() {
    for (name, p) in [("standard", standard_vm()), ("15s on the hour", other_vm())] {
        for basis in ["request", "usage", "max"] {
            let messages = dry_run_on(p, basis, &[]);
            validate(&messages);
            let worst = check_on(p, basis, &messages);
            eprintln!(
                "VictoriaMetrics, {name} cluster, {basis} basis: largest error where exact was \
                 required: {worst:e}"
            );
        }
    }
}

/// Each engine gets the selectors for its windows: detected, logged, and forcing the wrong
/// ones shows in the numbers (so the detection is what makes them right).
#[test]
fn window_semantics_are_detected_per_engine() {
    for (p, expected) in [(standard(), "closed"), (standard_vm(), "left-open")] {
        let out = run(bin()
            .args([
                "--prometheus-url",
                &p.url,
                "--cluster-name",
                CLUSTER,
                "--dry-run",
            ])
            .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
            .args(["--until", &rfc3339(p.dataset.first_truth_hour + 3600)])
            .args(["--now", "2026-11-02T00:00:00Z"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("range windows detected windows={expected}")),
            "{}",
            out.stderr
        );
    }
    // Closed-window selectors on VictoriaMetrics miss the samples on the hour: the 15s cluster
    // scrapes exactly on it, so the request basis comes out wrong without the detection.
    let p = other_vm();
    let forced = dry_run_on(p, "usage", &["--window-semantics", "closed"]);
    let detected = dry_run_on(p, "usage", &[]);
    assert_ne!(
        by_namespace_hour(&forced),
        by_namespace_hour(&detected),
        "forcing closed windows on VictoriaMetrics changed nothing: the probe is not what \
         makes the numbers right"
    );
}

/// A time-sliced GPU without a configured replica count fails the hour with the flag to set;
/// a GPU-like resource without a weight is billed 0 with one warning naming it.
#[test]
fn unweighted_gpus_are_refused_or_named() {
    let p = other();
    let out = run(bin()
        .args([
            "--prometheus-url",
            &p.url,
            "--cluster-name",
            CLUSTER,
            "--dry-run",
        ])
        .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
        .args(["--until", &rfc3339(p.dataset.first_truth_hour + 3600)])
        .args(["--now", "2026-11-02T00:00:00Z"]));
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--gpu-resource nvidia.com/gpu.shared=1/<replicas>"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());

    let p = standard();
    let out = run(bin()
        .args([
            "--prometheus-url",
            &p.url,
            "--cluster-name",
            CLUSTER,
            "--dry-run",
        ])
        .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
        .args(["--until", &rfc3339(p.dataset.first_truth_hour + 2 * 3600)])
        .args(["--now", "2026-11-02T00:00:00Z", "--hours-per-query", "1"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("has no weight") && l.contains("gpu_intel_com_i915"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "once per run, not per span: {}",
        out.stderr
    );
}

/// The usage counters are read in two parts (the exact case analysis for namespaces with a
/// counter that fell, a steady form for the rest): on both engines and both clusters, the job's
/// numbers equal those of the whole case analysis sent as one query for every namespace, and
/// the split did happen (the synthetic clusters restart containers). Both ways of reading the
/// fallen counters: their raw samples, computed by the job, and PromQL. (Where they may differ,
/// a counter that fell twice in an hour, PromQL estimates: these clusters have none, and
/// `each_counter_shape_is_billed_by_its_definition` has one.)
#[tokio::test(flavor = "multi_thread")]
async fn split_counter_reads_equal_the_whole_case_analysis() {
    use consumption_metrics::prometheus::{Prometheus, RangeQuery};
    use consumption_metrics::queries::{
        self, Counters, CpuRead, Namespaces, SampleWeight, Windows,
    };
    let engines = [
        ("Prometheus", standard(), Windows::Closed, 30),
        ("Prometheus, 15s", other(), Windows::Closed, 15),
        ("VictoriaMetrics", standard_vm(), Windows::LeftOpen, 30),
        ("VictoriaMetrics, 15s", other_vm(), Windows::LeftOpen, 15),
    ];
    for (engine, p, windows, interval) in engines {
        let config = common::dry_run_config(&p.url, "2026-11-02T00:00:00Z");
        let prometheus = Prometheus::new(&config.prometheus).unwrap();
        let exact = Counters::Exact {
            interval: std::time::Duration::from_secs(interval),
        };
        let reads = [
            ("usage", CpuRead::Used(exact)),
            ("max", CpuRead::Larger(SampleWeight::PerHour, exact)),
        ];
        let ways = reads
            .into_iter()
            .flat_map(|b| [(b, "samples"), (b, "queries")]);
        for ((name, read), way) in ways {
            let (messages, stderr) = tokio::task::spawn_blocking(move || {
                dry_run_logged(p, name, &["--fallen-counters", way])
            })
            .await
            .unwrap();
            assert!(
                stderr.contains("their CPU is read with the full case analysis")
                    && stderr.contains(&format!("from=\"{way}\"")),
                "{engine}, {name}: no namespace was read exactly from {way}, the split is not \
                 tested:\n{stderr}"
            );
            let got = by_namespace_hour(&messages);
            let whole = queries::cpu(windows, read, Namespaces::All);
            let answer = prometheus
                .query_range(&RangeQuery {
                    what: "whole case analysis",
                    expr: &whole,
                    start: chrono::DateTime::from_timestamp(p.dataset.first_truth_hour + 3600, 0)
                        .unwrap(),
                    end: chrono::DateTime::from_timestamp(p.dataset.data_end, 0).unwrap(),
                    step: std::time::Duration::from_secs(3600),
                })
                .await
                .unwrap();
            let mut want: BTreeMap<(i64, String), f64> = BTreeMap::new();
            for s in answer {
                let ns = s.labels["namespace"].clone();
                for (end, v) in s.points {
                    want.insert((end - 3600, ns.clone()), v);
                }
            }
            let mut compared = 0;
            // The standard cluster's kube-state-metrics hole (03:50-03:52) makes its hour
            // uneven: the run weighs it per segment, which the whole query's one weight per
            // hour does not (the truth tests check that hour).
            let uneven = p.dataset.first_truth_hour + 2 * 3600;
            for ((hour, ns), c) in got.iter().filter(|((h, _), _)| *h != uneven) {
                let have = c["cpu"].as_f64().unwrap();
                let want = want.get(&(*hour, ns.clone())).copied().unwrap_or(0.0);
                assert!(
                    (have - consumption_metrics::message::round(want)).abs() <= EXACT,
                    "{engine}, {name} from {way}, {} {ns}: split {have}, whole {want}",
                    rfc3339(*hour)
                );
                compared += 1;
            }
            assert!(
                compared > 100,
                "{engine}, {name} from {way}: only {compared} compared"
            );
            let hours: BTreeSet<i64> = got.keys().map(|(h, _)| *h).collect();
            for ((hour, ns), v) in &want {
                if hours.contains(hour) && !excluded(ns) && *v > EXACT {
                    assert!(
                        got.contains_key(&(*hour, ns.clone())),
                        "{engine}, {name} from {way}: {ns} used {v} core-hours in {} but was \
                         not billed",
                        rfc3339(*hour)
                    );
                }
            }
        }
    }
}

/// One counter of each shape, in a namespace of its own, written by hand (30 s scrapes, 7 s
/// after the tick, over three hours) and billed for the middle hour by both counter bases,
/// reading the fallen counters both ways: the climb since the hour before; a reset between the
/// hours (the counter since it); a counter born in the hour from zero (all of it) and one first
/// seen with a large value (only its climb in the hour); a reset inside the hour (the climb to
/// it plus the counter since); two resets inside the hour (every climb: only from the samples,
/// PromQL estimates it with `increase()`). The values follow from the samples by these
/// definitions, not from the job's PromQL or arithmetic, and the last three shapes exist
/// nowhere in the synthetic clusters.
#[test]
fn each_counter_shape_is_billed_by_its_definition() {
    use std::fmt::Write;
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .unwrap()
        .timestamp();
    let (hour, end) = (t0 + 3600, t0 + 7200);
    let times: Vec<i64> = (0..360).map(|k| t0 + 7 + 30 * k).collect();
    // namespace -> value at t, None before the series exists.
    type Shape = fn(i64, i64) -> Option<f64>;
    let shapes: [(&str, Shape); 6] = [
        ("steady", |t0, t| Some(1000.0 + 0.5 * (t - t0) as f64)),
        ("between", |t0, t| {
            Some(if t < t0 + 3600 {
                5000.0 + 0.25 * (t - t0) as f64
            } else {
                0.25 * (t - t0 - 3590) as f64
            })
        }),
        ("born-zero", |t0, t| {
            (t >= t0 + 4200).then(|| 0.5 * (t - t0 - 4190) as f64)
        }),
        ("born-history", |t0, t| {
            (t >= t0 + 4200).then(|| 200_000.0 + 0.5 * (t - t0 - 4190) as f64)
        }),
        ("inner-reset", |t0, t| {
            Some(if t < t0 + 5400 {
                90_000.0 + 2.0 * (t - t0) as f64
            } else {
                0.5 * (t - t0 - 5390) as f64
            })
        }),
        ("two-resets", |t0, t| {
            Some(if t < t0 + 4800 {
                50_000.0 + (t - t0) as f64
            } else if t < t0 + 6000 {
                0.5 * (t - t0 - 4790) as f64
            } else {
                0.25 * (t - t0 - 5990) as f64
            })
        }),
    ];
    let mut om = String::from("# TYPE kube_namespace_status_phase gauge\n");
    for (ns, _) in &shapes {
        for t in &times {
            writeln!(
                om,
                "kube_namespace_status_phase{{job=\"kube-state-metrics\",namespace=\"{ns}\",phase=\"Active\"}} 1 {t}"
            )
            .unwrap();
        }
    }
    // The pod of the reference namespace, with a request below its usage (so the max basis
    // bills its usage): every store the job bills has the pods' families.
    // As the platform's exporters are scraped (their `job`, README "Trust").
    let pod = "job=\"kube-state-metrics\",namespace=\"steady\",pod=\"p\",uid=\"u-1\"";
    om.push_str("# TYPE kube_pod_status_phase gauge\n");
    for t in &times {
        writeln!(om, "kube_pod_status_phase{{{pod},phase=\"Running\"}} 1 {t}").unwrap();
    }
    om.push_str("# TYPE kube_pod_container_resource_requests gauge\n");
    for t in &times {
        writeln!(
            om,
            "kube_pod_container_resource_requests{{{pod},container=\"c\",resource=\"cpu\",unit=\"core\"}} 0.1 {t}"
        )
        .unwrap();
    }
    om.push_str("# TYPE container_cpu_usage_seconds counter\n");
    for (ns, f) in &shapes {
        let labels = format!(
            "job=\"kubelet\",metrics_path=\"/metrics/cadvisor\",namespace=\"{ns}\",pod=\"p\",container=\"c\",id=\"/kubepods/{ns}/c\""
        );
        for t in &times {
            if let Some(v) = f(t0, *t) {
                writeln!(om, "container_cpu_usage_seconds_total{{{labels}}} {v} {t}").unwrap();
            }
        }
    }
    om.push_str("# EOF\n");
    // By definition, from the samples of the billed hour and the one before.
    let value = |f: Shape, pick: &dyn Fn(&[i64]) -> Option<i64>, from: i64, to: i64| {
        let ts: Vec<i64> = times
            .iter()
            .copied()
            .filter(|t| (from..to).contains(t) && f(t0, *t).is_some())
            .collect();
        pick(&ts).and_then(|t| f(t0, t))
    };
    let last = |ts: &[i64]| ts.last().copied();
    let first = |ts: &[i64]| ts.first().copied();
    let expected: BTreeMap<&str, f64> = shapes
        .iter()
        .map(|(ns, f)| {
            let l = value(*f, &last, hour, end).unwrap();
            let lp = value(*f, &last, t0, hour);
            let m = value(*f, &first, hour, end).unwrap();
            let seconds = match *ns {
                "steady" => l - lp.unwrap(),
                "between" | "born-zero" => l,
                "born-history" => l - m,
                // The value just before the reset, then the counter since it.
                "inner-reset" => value(*f, &last, hour, t0 + 5400).unwrap() - lp.unwrap() + l,
                // The climb to the first reset, the counter up to the second, then since it.
                _ => {
                    value(*f, &last, hour, t0 + 4800).unwrap() - lp.unwrap()
                        + value(*f, &last, t0 + 4800, t0 + 6000).unwrap()
                        + l
                }
            };
            (*ns, seconds / 3600.0)
        })
        .collect();

    let dir = common::test_dir("counter-shapes");
    let openmetrics = dir.join("metrics.om");
    std::fs::write(&openmetrics, om).unwrap();
    let dataset = consumption_metrics_synth::Dataset {
        openmetrics,
        truth: dir.join("no-truth.json"),
        first_truth_hour: hour,
        data_end: end,
    };
    let p = common::serve_prometheus(dir, dataset);
    for (basis, way) in ["usage", "max"]
        .into_iter()
        .flat_map(|b| [(b, "samples"), (b, "queries")])
    {
        let out = run(bin()
            .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
            .args(["--dry-run", "--cpu-basis", basis, "--fallen-counters", way])
            // This store has no kube-system: its timeline is read from a namespace it has.
            .args(["--reference-namespace", "steady"])
            .args(["--since", &rfc3339(hour), "--until", &rfc3339(end)])
            .args(["--now", "2026-11-02T00:00:00Z"]));
        assert_eq!(out.code, 0, "stderr: {}", out.stderr);
        // The inner resets take the exact part; everything else the steady one.
        assert!(
            out.stderr.contains("namespaces=2") && out.stderr.contains(&format!("from=\"{way}\"")),
            "{basis}: two namespaces read exactly, from {way}: {}",
            out.stderr
        );
        let messages: Value = serde_json::from_str(&out.stdout).unwrap();
        let got = by_namespace_hour(messages.as_array().unwrap());
        for (ns, want) in &expected {
            if way == "queries" && *ns == "two-resets" {
                continue;
            }
            let have = got[&(hour, ns.to_string())]["cpu"].as_f64().unwrap();
            assert!(
                (have - consumption_metrics::message::round(*want)).abs() <= EXACT,
                "{basis} from {way}, {ns}: billed {have} core-hours, by definition {want}"
            );
        }
    }
}

/// Two clusters in one store, each series labelled with its cluster as a central Thanos,
/// Mimir or VictoriaMetrics holds them. The hand-made namespaces exist in both, with pods of
/// the same names: together they would add up and be merged.
fn store_options() -> Vec<Options> {
    ["east", "west"]
        .into_iter()
        .zip([11, 12])
        .map(|(name, seed)| Options {
            seed,
            hours: 4,
            random_namespaces: 25,
            external_labels: vec![("cluster".into(), name.into())],
            ..Options::default()
        })
        .collect()
}

/// A dry-run of every truth hour of `p`, whatever its exit.
fn dry_run_outcome(p: &TestPrometheus, basis: &str, extra: &[&str]) -> Outcome {
    run(bin()
        .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
        .args(["--dry-run", "--cpu-basis", basis])
        .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
        .args(["--until", &rfc3339(p.dataset.data_end)])
        .args(["--now", "2026-11-02T00:00:00Z"])
        .args([
            "--storage-tier",
            "gold=premium",
            "--storage-tier",
            "cephfs=basic",
        ])
        .args(extra))
}

/// Without a selector, a two-cluster store is refused before anything is billed; with
/// `--prometheus-selector`, each cluster is billed exactly as its own truth says, on
/// Prometheus and on VictoriaMetrics, on every basis.
#[test]
fn two_clusters_in_one_store_are_billed_one_at_a_time() {
    let opts = store_options();
    for (engine, (p, datasets)) in [
        ("prometheus", common::start_store_prometheus("store", &opts)),
        (
            "victoria-metrics",
            common::start_store_victoria_metrics("store-vm", &opts),
        ),
    ] {
        let out = dry_run_outcome(&p, "request", &[]);
        assert_eq!(out.code, 4, "{engine}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{engine}: {}", out.stdout);
        for says in [
            r#"2 clusters (label cluster: "east", "west")"#,
            r#"--prometheus-selector 'cluster="east"'"#,
        ] {
            assert!(
                out.stderr.contains(says),
                "{engine}: {says} in {}",
                out.stderr
            );
        }
        for (cluster, dataset) in ["east", "west"].into_iter().zip(&datasets) {
            let truth: Vec<TruthRow> =
                serde_json::from_slice(&std::fs::read(&dataset.truth).unwrap()).unwrap();
            let selector = format!("cluster=\"{cluster}\"");
            for basis in ["request", "usage", "max"] {
                let messages = dry_run_on(&p, basis, &["--prometheus-selector", &selector]);
                validate(&messages);
                let worst = check_truth(truth.clone(), basis, &messages);
                assert!(worst <= EXACT, "{engine} {cluster} {basis}: {worst}");
            }
        }
        // A selector that still lets both through is refused the same way.
        let out = dry_run_outcome(&p, "request", &["--prometheus-selector", "cluster=~\".+\""]);
        assert_eq!(out.code, 4, "{engine}: {}", out.stderr);
        assert!(
            out.stderr.contains("even within --prometheus-selector"),
            "{}",
            out.stderr
        );
    }
}

/// kube-state-metrics scraped without `honor_labels`: its objects' namespaces arrive as
/// `exported_namespace` and `namespace` is the exporter's own. The hour is refused with the
/// fix, nothing is printed, on both engines.
#[test]
fn data_scraped_without_honor_labels_is_refused() {
    let opts = [Options {
        hours: 3,
        random_namespaces: 5,
        honor_labels: false,
        ..Options::default()
    }];
    for (engine, (p, _)) in [
        (
            "prometheus",
            common::start_store_prometheus("no-honor", &opts),
        ),
        (
            "victoria-metrics",
            common::start_store_victoria_metrics("no-honor-vm", &opts),
        ),
    ] {
        let out = dry_run_outcome(&p, "request", &[]);
        assert_eq!(out.code, 4, "{engine}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{engine}: {}", out.stdout);
        for says in [
            "kube-state-metrics or cAdvisor series carry the label exported_namespace (per \
             scrape job: \"kube-state-metrics\" (",
            "honor_labels: true",
            "honorLabels: true",
        ] {
            assert!(
                out.stderr.contains(says),
                "{engine}: {says} in {}",
                out.stderr
            );
        }
    }
}

/// A second cluster whose data stops inside an hour (west, from 23:30 to 02:30) is seen in
/// that hour, not only at its end: the hour 02:00–03:00 is refused, on Prometheus and
/// VictoriaMetrics, and the next hour, east's alone, is billed.
#[test]
fn a_cluster_that_stops_inside_an_hour_is_seen_in_it() {
    let mut opts = store_options();
    opts[1].start = opts[0].start - 1800;
    opts[1].hours = 3;
    for (engine, (p, datasets)) in [
        (
            "prometheus",
            common::start_store_prometheus("store-stops", &opts),
        ),
        (
            "victoria-metrics",
            common::start_store_victoria_metrics("store-stops-vm", &opts),
        ),
    ] {
        let hour = |since: &str, until: &str| {
            run(bin()
                .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
                .args(["--dry-run", "--cpu-basis", "request"])
                .args(["--since", since, "--until", until])
                .args(["--now", "2026-11-02T00:00:00Z"]))
        };
        let out = hour("2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z");
        assert_eq!(out.code, 4, "{engine}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{engine}: {}", out.stdout);
        assert!(
            out.stderr
                .contains(r#"2 clusters (label cluster: "east", "west")"#)
                && out.stderr.contains("2026-11-01T02:00:00Z"),
            "{engine}: {}",
            out.stderr
        );
        let out = hour("2026-11-01T03:00:00Z", "2026-11-01T04:00:00Z");
        assert_eq!(out.code, 0, "{engine}: {}", out.stderr);
        // East's alone, and its truth.
        let messages: Value = serde_json::from_str(&out.stdout).unwrap();
        let east: Vec<TruthRow> =
            serde_json::from_slice::<Vec<TruthRow>>(&std::fs::read(&datasets[0].truth).unwrap())
                .unwrap()
                .into_iter()
                .filter(|r| r.hour == opts[0].start + 3 * 3600)
                .collect();
        let got = by_namespace_hour(messages.as_array().unwrap());
        for r in east.iter().filter(|r| !excluded(&r.namespace)) {
            let have = got[&(r.hour, r.namespace.clone())]["cpu"].as_f64().unwrap();
            assert!(
                (have - r.cpu_request).abs() <= r.tol_cpu_request + EXACT,
                "{engine}: {} billed {have}, east's truth {}",
                r.namespace,
                r.cpu_request
            );
        }
        assert_eq!(
            got.len(),
            east.iter().filter(|r| !excluded(&r.namespace)).count(),
            "{engine}: east's namespaces only"
        );
    }
}

/// A cluster whose pods reserve more (or other) than their app containers request: native
/// sidecars before and after ordinary init containers, a heavy init container, pod overhead,
/// a mid-hour start of a pod with a sidecar, a Pending pod with one, GPUs in an init
/// container (synth's `team-mesh`), scraped offset from the tick and exactly on it.
fn mesh_options(on_the_hour: bool) -> Options {
    Options {
        hours: 5,
        random_namespaces: 10,
        sidecars: true,
        ksm_offsets: if on_the_hour {
            vec![0, 13]
        } else {
            vec![7, 13]
        },
        cadvisor_offset: if on_the_hour { 0 } else { 11 },
        seed: if on_the_hour { 31 } else { 30 },
        ..Options::default()
    }
}

/// The truth as the containers model bills it: the app containers' requests alone.
fn containers_truth(truth: Vec<TruthRow>) -> Vec<TruthRow> {
    truth
        .into_iter()
        .map(|r| TruthRow {
            cpu_request: r.cpu_request_containers,
            gpu: r.gpu_containers,
            ..r
        })
        .collect()
}

/// The request basis bills what Kubernetes reserves (the pods' effective requests, KEP-753),
/// exactly, on Prometheus and VictoriaMetrics, scraped offset and on the hour; GPUs the same
/// way; `--cpu-request-model containers` bills the app containers alone, exactly too. The
/// issue's table: two pods of 1.0 + a 0.5 sidecar hold 3.0, an app of 0.5 with an init
/// container of 3.0 holds 3.0, an app of 1.0 with 0.25 overhead holds 1.25.
#[test]
fn pods_are_billed_what_kubernetes_reserves() {
    for on_the_hour in [false, true] {
        let opts = mesh_options(on_the_hour);
        let tag = if on_the_hour { "hour" } else { "offset" };
        for (engine, (p, datasets)) in [
            (
                "prometheus",
                common::start_store_prometheus(&format!("mesh-{tag}"), std::slice::from_ref(&opts)),
            ),
            (
                "victoria-metrics",
                common::start_store_victoria_metrics(
                    &format!("mesh-vm-{tag}"),
                    std::slice::from_ref(&opts),
                ),
            ),
        ] {
            let truth: Vec<TruthRow> =
                serde_json::from_slice(&std::fs::read(&datasets[0].truth).unwrap()).unwrap();
            let pod = dry_run_on(&p, "request", &[]);
            validate(&pod);
            let worst = check_truth(truth.clone(), "request", &pod);
            assert!(worst <= EXACT, "{engine} {tag} pod model: {worst}");
            // The table's pods, in a full hour (03:00, the fourth hour of the data).
            let got = by_namespace_hour(&pod);
            let hour = p.dataset.first_truth_hour + 2 * 3600;
            let mesh = &got[&(hour, "team-mesh".to_string())];
            let want = 2.0 * 1.5 + 3.0 + 1.25 + 1.0 + 3.5 + 1.5 + 1.5 + 1.0;
            assert!(
                (mesh["cpu"].as_f64().unwrap() - want).abs() <= EXACT,
                "{engine} {tag}: team-mesh {mesh}, want cpu {want}"
            );
            assert!(
                (mesh["gpu"].as_f64().unwrap() - 2.0).abs() <= EXACT,
                "{mesh}"
            );

            let containers = dry_run_on(&p, "request", &["--cpu-request-model", "containers"]);
            let worst = check_truth(containers_truth(truth.clone()), "request", &containers);
            assert!(worst <= EXACT, "{engine} {tag} containers model: {worst}");
            let mesh = &by_namespace_hour(&containers)[&(hour, "team-mesh".to_string())];
            assert!(
                (mesh["cpu"].as_f64().unwrap() - 8.5).abs() <= EXACT,
                "{engine} {tag}: the app containers alone, {mesh}"
            );
            // Memory, opt-in: every entry carries `ram`, the same model as CPU; without the
            // flag no entry does.
            assert!(
                pod.iter()
                    .flat_map(|m| m["payload"].as_array().unwrap())
                    .all(|e| e["consumption"].get("ram").is_none()),
                "ram without --bill-memory"
            );
            for (model, want) in [("pod", true), ("containers", false)] {
                let messages = dry_run_on(
                    &p,
                    "request",
                    &["--bill-memory", "--cpu-request-model", model],
                );
                validate(&messages);
                let got = by_namespace_hour(&messages);
                let mut failures = Vec::new();
                for r in truth.iter().filter(|r| !excluded(&r.namespace)) {
                    let ram = got[&(r.hour, r.namespace.clone())]["ram"]
                        .as_f64()
                        .unwrap_or_else(|| panic!("no ram for {} with --bill-memory", r.namespace));
                    let truth = if want { r.ram } else { r.ram_containers };
                    if (ram - truth).abs() > r.tol_ram + EXACT {
                        failures.push(format!(
                            "{} {}: ram {ram}, truth {truth}",
                            r.hour, r.namespace
                        ));
                    }
                }
                assert!(failures.is_empty(), "{engine} {tag} {model}: {failures:?}");
                let mesh = &got[&(hour, "team-mesh".to_string())];
                // The table's pods at 1 GiB per core: 15.5 GiB in the pod model (its 15.75
                // cores less Kata's 0.25-core overhead) plus Kata's 160 MiB memory overhead;
                // 8.5 for the app containers alone.
                let want_ram = if want { 15.5 + 160.0 / 1024.0 } else { 8.5 };
                assert!(
                    (mesh["ram"].as_f64().unwrap() - want_ram).abs() <= EXACT,
                    "{engine} {tag} {model}: {mesh}"
                );
            }
            // The usage and max bases are unchanged by the model (docs/billing.md).
            for basis in ["usage", "max"] {
                let messages = dry_run_on(&p, basis, &[]);
                let worst = check_truth(truth.clone(), basis, &messages);
                assert!(worst <= EXACT, "{engine} {tag} {basis}: {worst}");
            }
        }
    }
}

/// kube-state-metrics older than 2.11 writes no `restart_policy`: a sidecar cannot be told
/// from an ordinary init container, so the pod model stops with what to do, and the
/// containers model still bills.
#[test]
fn sidecars_without_restart_policy_are_refused_not_guessed() {
    let opts = Options {
        ksm_restart_policy: false,
        ..mesh_options(false)
    };
    let (p, datasets) = common::start_store_prometheus("mesh-old-ksm", &[opts]);
    let out = dry_run_outcome(&p, "request", &[]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    for says in [
        "kube-state-metrics older than 2.11",
        "--cpu-request-model containers",
    ] {
        assert!(out.stderr.contains(says), "{says} in {}", out.stderr);
    }
    let truth: Vec<TruthRow> =
        serde_json::from_slice(&std::fs::read(&datasets[0].truth).unwrap()).unwrap();
    let containers = dry_run_on(&p, "request", &["--cpu-request-model", "containers"]);
    let worst = check_truth(containers_truth(truth), "request", &containers);
    assert!(worst <= EXACT, "{worst}");
}

/// A cluster as real stores hold one (issue "Bill an hour only when the store holds all of
/// it"): a 12-minute Prometheus outage inside an hour (02:20-02:32) with objects changing
/// before, during and after it, a 12-minute one across an hour's start (03:54-04:06), and the
/// scrape interval retuned from 30 s to 15 s at 05:25 with short-lived pods on both sides;
/// scraped offset from the tick, or exactly on it.
fn time_options(on_the_hour: bool) -> Options {
    Options {
        hours: 7,
        random_namespaces: 12,
        seed: if on_the_hour { 45 } else { 44 },
        ksm_offsets: if on_the_hour {
            vec![0, 13]
        } else {
            vec![7, 13]
        },
        cadvisor_offset: if on_the_hour { 0 } else { 11 },
        outages: vec![(2.0 + 20.0 / 60.0, 2.0 + 32.0 / 60.0), (3.9, 4.1)],
        interval_change: Some((5.0 + 25.0 / 60.0, 15)),
        ..Options::default()
    }
}

/// Holes are bridged from both sides and every sample weighs the time it stands for, on both
/// engines and every basis: each namespace-hour equals the truth (exact where nothing changed;
/// within the hole's length for what changed inside it; within one interval for the rest), and
/// `team-resized`, whose pod was replaced 10 minutes before the outage and nothing changed in
/// it, is billed within one interval (spreading the hole over the hour bills it +7 %).
#[test]
fn holes_and_retuned_intervals_are_billed_as_time_passed() {
    for on_the_hour in [false, true] {
        let opts = time_options(on_the_hour);
        let name = format!("time-{on_the_hour}");
        for (engine, p) in on_both_engines(&name, &opts) {
            for basis in ["request", "usage", "max"] {
                let (messages, stderr) = dry_run_logged(&p, basis, &[]);
                check_on(&p, basis, &messages);
                assert!(
                    stderr.contains("scraped unevenly in this hour"),
                    "{engine}: the uneven hours were not weighed per segment:\n{stderr}"
                );
                if basis != "request" {
                    continue;
                }
                let got = by_namespace_hour(&messages);
                let outage_hour = opts.start + 2 * 3600;
                let want = truth(&p)
                    .into_iter()
                    .find(|r| r.hour == outage_hour && r.namespace == "team-resized")
                    .expect("team-resized in the truth");
                let have = got[&(outage_hour, "team-resized".to_string())]["cpu"]
                    .as_f64()
                    .unwrap();
                // Each pod's start or stop is known to within one scrape interval.
                let one_interval = (2.5 + 0.75) * 30.0 / 3600.0;
                assert!(
                    (have - want.cpu_request).abs() <= one_interval,
                    "{engine} (on the hour: {on_the_hour}): team-resized billed {have}, truth \
                     {}: the outage's minutes were not bridged",
                    want.cpu_request
                );
            }
        }
    }
}

/// A hole longer than --max-scrape-gap is refused with exit 4, naming the stretch and the
/// flag; raised above it, the hour is billed from both sides.
#[test]
fn a_hole_over_the_limit_is_refused_with_the_flag_to_bill_it() {
    let opts = Options {
        hours: 4,
        random_namespaces: 4,
        outages: vec![(2.25, 2.6)],
        ..Options::default()
    };
    let p = common::start_prometheus("long-hole", &opts);
    let hour =
        |extra: &[&str]| dry_run_range(&p, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z", extra);
    let out = hour(&[]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    for part in [
        "no sample from 2026-11-01T02:14:",
        "--max-scrape-gap",
        "raise",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
    // Raised above it, the hour is billed from both sides: every namespace equals the truth,
    // exact for what did not change in or beside the 21-minute hole.
    let out = hour(&[&["--max-scrape-gap", "30m"][..], &TIERS].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let hour_start = opts.start + 2 * 3600;
    let rows: Vec<TruthRow> = truth(&p)
        .into_iter()
        .filter(|r| r.hour == hour_start)
        .collect();
    let messages: Value = serde_json::from_str(&out.stdout).unwrap();
    check_truth(rows, "request", messages.as_array().unwrap());
}

/// The storage tiers of [`dry_run_logged`], for runs that set them themselves.
const TIERS: [&str; 4] = [
    "--storage-tier",
    "gold=premium",
    "--storage-tier",
    "cephfs=basic",
];

/// A store that lags (its data ends at 04:40 while the run's clock says 05:10): a dry-run or
/// backfill that asks for 04:00-05:00 is refused with exit 7 and prints nothing, naming the
/// newest sample and the flag; the hour before is billed; with --bill-incomplete the hour is
/// billed as the store has it, with a warning, and lacks the namespace created at 04:45.
#[test]
fn an_hour_the_store_does_not_hold_in_full_is_refused() {
    let opts = Options {
        hours: 6,
        random_namespaces: 4,
        stored_until: Some(4.0 + 40.0 / 60.0),
        late_batch: Some(4.75),
        ..Options::default()
    };
    for (engine, p) in on_both_engines("lagging", &opts) {
        let run_until = |until: &str, extra: &[&str]| {
            run(bin()
                .args([
                    "--prometheus-url",
                    &p.url,
                    "--cluster-name",
                    CLUSTER,
                    "--dry-run",
                ])
                .args(["--since", "2026-11-01T03:00:00Z", "--until", until])
                .args(["--now", "2026-11-01T05:10:00Z"])
                .args(extra))
        };
        let out = run_until("2026-11-01T05:00:00Z", &[]);
        assert_eq!(out.code, 7, "{engine}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{engine}: {}", out.stdout);
        for part in [
            "does not hold the hour [2026-11-01T04:00:00Z, 2026-11-01T05:00:00Z) in full yet",
            "the newest kube-state-metrics sample is 2026-11-01T04:39:",
            "--bill-incomplete",
        ] {
            assert!(
                out.stderr.contains(part),
                "{engine}: {part}\n{}",
                out.stderr
            );
        }
        // The hours the store holds in full equal the truth.
        let out = run_until("2026-11-01T04:00:00Z", &TIERS);
        assert_eq!(out.code, 0, "{engine}: {}", out.stderr);
        let messages: Value = serde_json::from_str(&out.stdout).unwrap();
        let held: Vec<TruthRow> = truth(&p)
            .into_iter()
            .filter(|r| (opts.start + 3 * 3600..opts.start + 4 * 3600).contains(&r.hour))
            .collect();
        check_truth(held, "request", messages.as_array().unwrap());
        let out = run_until(
            "2026-11-01T05:00:00Z",
            &[&["--bill-incomplete"][..], &TIERS].concat(),
        );
        assert_eq!(out.code, 0, "{engine}: {}", out.stderr);
        assert!(out.stderr.contains("billing it anyway"), "{}", out.stderr);
        let messages: Value = serde_json::from_str(&out.stdout).unwrap();
        let got = by_namespace_hour(messages.as_array().unwrap());
        assert!(
            !got.contains_key(&(opts.start + 4 * 3600, "team-late".to_string())),
            "{engine}: the namespace created after the store's newest sample"
        );
        // The incomplete hour as the store has it: each sample stands for the time to the
        // next, the last to the hour's end, so what did not change after 04:40 is billed its
        // truth, exactly.
        for r in truth(&p).into_iter().filter(|r| {
            r.hour == opts.start + 4 * 3600
                && !excluded(&r.namespace)
                && r.tol_cpu_request == 0.0
                && r.namespace != "team-late"
        }) {
            let have = got[&(r.hour, r.namespace.clone())]["cpu"].as_f64().unwrap();
            assert!(
                (have - r.cpu_request).abs() <= EXACT,
                "{engine}: {} billed {have} in the incomplete hour, truth {}",
                r.namespace,
                r.cpu_request
            );
        }
    }
}

/// A store without one source a billed dimension reads (cAdvisor not scraped, or a
/// kube-state-metrics family dropped) is refused with exit 4 naming the metric, instead of
/// billing 0 for every namespace; a basis that does not read it bills as usual.
#[test]
fn a_missing_source_is_refused_not_billed_as_zero() {
    for (metric, basis_refused, basis_fine) in [
        (
            "container_cpu_usage_seconds_total",
            "usage",
            Some("request"),
        ),
        ("kube_pod_container_resource_requests", "request", None),
    ] {
        let opts = Options {
            hours: 3,
            random_namespaces: 3,
            omit_metrics: vec![metric.to_string()],
            ..Options::default()
        };
        let p = common::start_prometheus(&format!("missing-{metric}"), &opts);
        let hour = |basis: &str| {
            dry_run_range(
                &p,
                "2026-11-01T01:00:00Z",
                "2026-11-01T02:00:00Z",
                &["--cpu-basis", basis],
            )
        };
        let out = hour(basis_refused);
        assert_eq!(out.code, 4, "{metric}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("no {metric} series")),
            "{metric}: {}",
            out.stderr
        );
        if let Some(basis) = basis_fine {
            let out = hour(basis);
            assert_eq!(out.code, 0, "{metric}, {basis}: {}", out.stderr);
        }
    }
}

/// A typo in --prometheus-selector (`cluster="eats"` on a store of east and west) reads as
/// what it is, naming the selector and the values the cluster label has, without the advice to
/// move the checkpoint that lost data gets; `--cluster-label region` (a label the series lack)
/// does not hide the two clusters.
#[test]
fn a_selector_that_matches_nothing_and_a_missing_cluster_label_are_named() {
    let (p, _) = common::start_store_prometheus("store-typo", &store_options());
    let hour =
        |extra: &[&str]| dry_run_range(&p, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z", extra);
    let out = hour(&["--prometheus-selector", r#"cluster="eats""#]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    for part in [
        r#"--prometheus-selector cluster="eats" matches no data"#,
        r#"cluster = "east", "west""#,
        "do not move the checkpoint",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("checkpoint set"), "{}", out.stderr);
    let out = hour(&["--cluster-label", "region"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(r#"2 clusters (label cluster: "east", "west")"#),
        "{}",
        out.stderr
    );
    let out = hour(&["--prometheus-selector", r#"cluster="east""#]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A pod overhead below zero, which Kubernetes' API validation forbids (only corrupt data
/// holds one), would lower the pod's bill: the hour is refused, naming what and how to find it.
#[test]
fn an_impossible_overhead_is_refused_not_billed() {
    let dir = common::test_dir("negative-overhead");
    let dataset =
        consumption_metrics_synth::write_dataset(&mesh_options(false), &dir.join("data")).unwrap();
    let text = std::fs::read_to_string(&dataset.openmetrics).unwrap();
    let mut corrupted = 0;
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("kube_pod_overhead_cpu_cores{")
                && let Some((head, ts)) = l.rsplit_once(' ')
                && let Some((labels, v)) = head.rsplit_once(' ')
            {
                corrupted += 1;
                return format!("{labels} -{v} {ts}\n");
            }
            format!("{l}\n")
        })
        .collect();
    assert!(corrupted > 0, "the mesh cluster has a pod overhead");
    std::fs::write(&dataset.openmetrics, text).unwrap();
    let p = common::serve_prometheus(dir, dataset);
    let out = dry_run_outcome(&p, "request", &[]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("hold a negative value") && out.stderr.contains("forbids"),
        "{}",
        out.stderr
    );
}

/// A dry-run of `[since, until)` on `p` with `extra` flags at the clock 2026-11-02, whatever
/// its exit.
fn dry_run_range(p: &TestPrometheus, since: &str, until: &str, extra: &[&str]) -> Outcome {
    run(bin()
        .args([
            "--prometheus-url",
            &p.url,
            "--cluster-name",
            CLUSTER,
            "--dry-run",
        ])
        .args(["--since", since, "--until", until])
        .args(["--now", "2026-11-02T00:00:00Z"])
        .args(extra))
}

/// A `restart_policy` Kubernetes does not accept (`"Always "` with a trailing space, written
/// by a broken relabelling) on one pod's sidecar is named in a warning: that container is
/// billed as an ordinary init container.
#[test]
fn an_odd_restart_policy_is_named() {
    let dir = common::test_dir("odd-restart-policy");
    let dataset =
        consumption_metrics_synth::write_dataset(&mesh_options(false), &dir.join("data")).unwrap();
    let text = std::fs::read_to_string(&dataset.openmetrics).unwrap();
    let mut changed = 0;
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("kube_pod_init_container_info{") && l.contains(r#"pod="mesh-a""#) {
                changed += 1;
                return format!(
                    "{}\n",
                    l.replace(r#"restart_policy="Always""#, r#"restart_policy="Always ""#)
                );
            }
            format!("{l}\n")
        })
        .collect();
    assert!(changed > 0, "mesh-a has a native sidecar");
    std::fs::write(&dataset.openmetrics, text).unwrap();
    let p = common::serve_prometheus(dir, dataset);
    let out = dry_run_outcome(&p, "request", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("restart_policy Kubernetes does not accept")
            && out.stderr.contains(r#"restart_policy="Always ""#),
        "{}",
        out.stderr
    );
}

/// Outages of several lengths at several places in an hour (at its start, at its end, across
/// its end, a single missed minute, just under the limit), on both engines: every
/// namespace-hour equals the truth, exact for what did not change in or next to a hole.
#[test]
fn outages_of_several_lengths_and_places_are_bridged() {
    let h = |hour: f64, minute: f64| hour + minute / 60.0;
    let opts = Options {
        hours: 7,
        random_namespaces: 30,
        seed: 61,
        outages: vec![
            (h(1.0, 0.0), h(1.0, 8.0)),
            (h(2.0, 52.0), h(3.0, 0.0)),
            (h(3.0, 20.0), h(3.0, 21.0)),
            (h(4.0, 10.0), h(4.0, 24.0)),
            (h(5.0, 50.0), h(6.0, 4.0)),
        ],
        ..Options::default()
    };
    for (engine, p) in on_both_engines("outages", &opts) {
        for basis in ["request", "usage", "max"] {
            let (messages, _) = dry_run_logged(&p, basis, &[]);
            check_on(&p, basis, &messages);
        }
        eprintln!("{engine}: every hour matches its truth");
    }
}

/// The reference namespaces are a list: OpenShift's kube-system holds no pods, and its
/// `openshift-monitoring` does. Read from either, the scrape timeline and the bill are the
/// same; a name that is not a namespace name is a usage error.
#[test]
fn the_reference_namespaces_are_a_list() {
    let p = standard();
    let hours = ("2026-11-01T03:00:00Z", "2026-11-01T05:00:00Z");
    let default = dry_run_range(p, hours.0, hours.1, &[]);
    let openshift = dry_run_range(
        p,
        hours.0,
        hours.1,
        &["--reference-namespace", "openshift-monitoring"],
    );
    assert_eq!(default.code, 0, "{}", default.stderr);
    assert_eq!(openshift.code, 0, "{}", openshift.stderr);
    assert_eq!(default.stdout, openshift.stdout);
    let bad = dry_run_range(
        p,
        hours.0,
        hours.1,
        &["--reference-namespace", "kube-system,a|b"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("--reference-namespace"),
        "{}",
        bad.stderr
    );
}

/// kube-state-metrics scaled from one replica to two at 02:30: from then on every object has
/// twice the samples, each standing for half the time; the hour is weighed per segment and
/// every namespace-hour equals the truth on both engines (one weight for the hour, the average,
/// would bill objects that start or stop in it by the replicas that saw them).
#[test]
fn a_replica_added_inside_an_hour_is_weighed_per_segment() {
    let opts = Options {
        hours: 5,
        random_namespaces: 15,
        seed: 71,
        ksm_replica_from: vec![0.0, 2.5],
        ..Options::default()
    };
    for (engine, p) in on_both_engines("replica-added", &opts) {
        for basis in ["request", "max"] {
            let (messages, stderr) = dry_run_logged(&p, basis, &[]);
            check_on(&p, basis, &messages);
            assert!(
                stderr.contains("scraped unevenly in this hour")
                    && stderr.contains("hour=[2026-11-01T02:00:00Z"),
                "{engine}: {stderr}"
            );
        }
    }
}

/// The cluster `opts` in a real Prometheus (closed windows) and a real VictoriaMetrics
/// (left-open windows), each named after `name`.
fn on_both_engines(name: &str, opts: &Options) -> [(&'static str, TestPrometheus); 2] {
    [
        ("prometheus", common::start_prometheus(name, opts)),
        (
            "victoria-metrics",
            common::start_victoria_metrics(&format!("{name}-vm"), opts),
        ),
    ]
}
