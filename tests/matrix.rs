//! Quirks in combination, not one at a time: every way the generator duplicates or adds
//! exporters (replicas at distinct and at equal timestamps, shards, a replica added inside an
//! hour, a kube-state-metrics restart, tenants' look-alike series) composed with every time shape (a
//! Prometheus outage inside an hour and one across an hour's edge, a retuned scrape interval,
//! a store that lags) and every basis (CPU requested by the pod and by the containers, from
//! kube-state-metrics and from kube-scheduler, used, the larger of both, memory, GPUs by
//! requests and by devices), on Prometheus (closed windows)
//! and VictoriaMetrics (left-open), each namespace-hour against the exact integral within the
//! truth's tolerance (exact for what did not change). Plus seeded random compositions.
//!
//! The doubling this guards against: two replicas scraped at the same moments in an hour
//! billed by segments (a hole) billed every namespace twice, because each quirk had its own
//! single test and none had both.

mod common;

use std::collections::BTreeMap;

use common::{TestPrometheus, bin, rfc3339, run};
use consumption_metrics_synth::scenario::Options;
use consumption_metrics_synth::truth::TruthRow;
use serde_json::Value;

const CLUSTER: &str = "synth-01";
const EXACT: f64 = 1e-6;

/// The time shapes, all in one cluster of 7 hours: a 12-minute outage inside 02:00-03:00
/// (objects of `team-resized` and `team-outage` change around it), a 12-minute one across
/// 04:00, the interval retuned from 30 s to 15 s at 05:25, and a store that holds data only to
/// 06:40 (the last hour waits).
fn shaped(quirk: Options) -> Options {
    let h = |hour: f64, minute: f64| hour + minute / 60.0;
    Options {
        hours: 7,
        outages: vec![(h(2.0, 20.0), h(2.0, 32.0)), (h(3.0, 54.0), h(4.0, 6.0))],
        interval_change: Some((h(5.0, 25.0), 15)),
        stored_until: Some(h(6.0, 40.0)),
        gpu_fleet: true,
        // Kubernetes 1.34+'s pods (pod-level requests, in-place resizes, one deferred across
        // the first outage) and kube-scheduler's two replicas, one restarted.
        pod_resources: true,
        scheduler_metric: true,
        ..quirk
    }
}

/// The quirks, each a way exporters are duplicated or added.
fn quirks() -> Vec<(&'static str, Options)> {
    let base = Options {
        random_namespaces: 8,
        seed: 101,
        ..Options::default()
    };
    vec![
        (
            "replicas at equal timestamps",
            Options {
                ksm_offsets: vec![7, 7],
                ..base.clone()
            },
        ),
        (
            "replicas at distinct timestamps, tenants' series",
            Options {
                ksm_offsets: vec![7, 13],
                tenant_series: true,
                seed: 102,
                ..base.clone()
            },
        ),
        (
            "aligned replicas, a restart inside an hour, tenants' series",
            Options {
                ksm_offsets: vec![0, 0],
                ksm_restarts: vec![2.5],
                tenant_series: true,
                cadvisor_offset: 0,
                seed: 103,
                ..base.clone()
            },
        ),
        (
            "three shards, two scraped at the same moments, a restart inside an hour",
            Options {
                ksm_offsets: vec![7, 7, 19],
                ksm_sharded: true,
                ksm_restarts: vec![1.5],
                seed: 106,
                ..base.clone()
            },
        ),
        (
            "a replica added at the same moments inside the outage's hour",
            Options {
                ksm_offsets: vec![7, 7],
                ksm_replica_from: vec![0.0, 2.75],
                seed: 104,
                ..base.clone()
            },
        ),
    ]
}

/// A truth row's value of one key, and its tolerance.
type Want = fn(&TruthRow) -> (f64, f64);

/// Each basis: its flags, and the truth's value and tolerance of `cpu`, `gpu` and `ram`.
struct Basis {
    name: &'static str,
    flags: &'static [&'static str],
    cpu: Want,
    gpu: Want,
    ram: Option<Want>,
}

fn bases() -> Vec<Basis> {
    vec![
        // kube-state-metrics sees the containers' specs (pod-level requests unseen).
        Basis {
            name: "request, pod model, memory",
            flags: &["--cpu-basis", "request", "--bill-memory"],
            cpu: |r| (r.cpu_request_spec, r.tol_cpu_request),
            gpu: |r| (r.gpu, r.tol_gpu),
            ram: Some(|r| (r.ram_spec, r.tol_ram)),
        },
        // kube-scheduler's requests: `PodRequests`, what Kubernetes reserves.
        Basis {
            name: "request, kube-scheduler, memory",
            flags: &[
                "--cpu-basis",
                "request",
                "--request-source",
                "scheduler",
                "--bill-memory",
            ],
            cpu: |r| (r.cpu_request, r.tol_cpu_request),
            gpu: |r| (r.gpu, r.tol_gpu),
            ram: Some(|r| (r.ram, r.tol_ram)),
        },
        Basis {
            name: "request, containers model",
            flags: &[
                "--cpu-basis",
                "request",
                "--cpu-request-model",
                "containers",
            ],
            cpu: |r| (r.cpu_request_containers, r.tol_cpu_request),
            gpu: |r| (r.gpu_containers, r.tol_gpu),
            ram: None,
        },
        Basis {
            name: "usage",
            flags: &["--cpu-basis", "usage"],
            cpu: |r| (r.cpu_usage, r.tol_cpu_usage),
            gpu: |r| (r.gpu, r.tol_gpu),
            ram: None,
        },
        Basis {
            name: "max, GPUs by devices",
            flags: &["--cpu-basis", "max", "--gpu-source", "devices"],
            cpu: |r| (r.cpu_max, r.tol_cpu_max),
            gpu: |r| (r.gpu_devices, r.tol_gpu_devices),
            ram: None,
        },
    ]
}

/// The dry-run of `[since, until)` with `flags`.
fn dry_run(p: &TestPrometheus, since: i64, until: i64, flags: &[&str]) -> common::Outcome {
    run(bin()
        .args([
            "--prometheus-url",
            &p.url,
            "--cluster-name",
            CLUSTER,
            "--dry-run",
        ])
        .args(["--since", &rfc3339(since), "--until", &rfc3339(until)])
        .args(["--now", "2026-11-02T00:00:00Z"])
        .args([
            "--storage-tier",
            "gold=premium",
            "--storage-tier",
            "cephfs=basic",
        ])
        // The fleet's and the hand-made namespaces' GPU resources, as their truth weighs them.
        .args(["--gpu-resource", "nvidia.com/gpu.shared=1/2"])
        .args(flags))
}

/// (hour start, namespace) → consumption.
fn by_namespace_hour(messages: &[Value]) -> BTreeMap<(i64, String), Value> {
    common::by_namespace_hour(messages, CLUSTER)
}

/// Every namespace-hour of `truth` in `[since, until)` against `messages`; the failures.
fn compare(
    truth: &[TruthRow],
    basis: &Basis,
    messages: &[Value],
    since: i64,
    until: i64,
) -> Vec<String> {
    let got = by_namespace_hour(messages);
    let mut failures = Vec::new();
    let rows: Vec<&TruthRow> = truth
        .iter()
        .filter(|r| (since..until).contains(&r.hour))
        .filter(|r| !r.namespace.starts_with("kube-") && !r.namespace.starts_with("openshift-"))
        .collect();
    if rows.len() != got.len() {
        failures.push(format!(
            "billed {} namespace-hours, the truth has {}",
            got.len(),
            rows.len()
        ));
    }
    for r in rows {
        let Some(c) = got.get(&(r.hour, r.namespace.clone())) else {
            failures.push(format!("{} {}: not billed", rfc3339(r.hour), r.namespace));
            continue;
        };
        let mut checks = vec![("cpu", (basis.cpu)(r)), ("gpu", (basis.gpu)(r))];
        if let Some(ram) = basis.ram {
            checks.push(("ram", ram(r)));
        }
        let storage: f64 = r.storage.values().sum();
        let billed_storage: f64 = [
            "storage_rwo_standard",
            "storage_rwx_standard",
            "storage_rwx_basic",
            "storage_rwx_premium",
        ]
        .iter()
        .map(|k| c[*k].as_f64().unwrap_or(f64::NAN))
        .sum();
        for (key, (want, tol)) in checks {
            let have = c[key].as_f64().unwrap_or(f64::NAN);
            // NaN (a key missing) fails too.
            if (have - want).abs() <= tol + EXACT {
                continue;
            }
            failures.push(format!(
                "{} {} {key}: got {have}, truth {want:.6}, tolerance {tol:.6}",
                rfc3339(r.hour),
                r.namespace
            ));
        }
        if (billed_storage - storage).abs() > r.tol_storage + EXACT || billed_storage.is_nan() {
            failures.push(format!(
                "{} {} storage: got {billed_storage}, truth {storage:.6}",
                rfc3339(r.hour),
                r.namespace
            ));
        }
    }
    failures
}

/// Usage counters telescope: over `[since, until)` each namespace's hours add up to its
/// total, within the changes' tolerances alone. What a hole across an hour's edge moves
/// between two hours (`edge_cpu_usage`) cancels in the sum, except at the span's two ends.
fn add_up(truth: &[TruthRow], messages: &[Value], since: i64, until: i64) -> Vec<String> {
    let got = by_namespace_hour(messages);
    let mut sums: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for r in truth.iter().filter(|r| (since..until).contains(&r.hour)) {
        let Some(c) = got.get(&(r.hour, r.namespace.clone())) else {
            continue;
        };
        let s = sums.entry(r.namespace.as_str()).or_default();
        s.0 += c["cpu"].as_f64().unwrap_or(f64::NAN);
        s.1 += r.cpu_usage;
        let ends = r.hour == since || r.hour + 3600 == until;
        // Rounding: 5e-7 per hour.
        s.2 += r.tol_cpu_usage - if ends { 0.0 } else { r.edge_cpu_usage } + 5e-7;
    }
    sums.into_iter()
        .filter(|(_, (have, want, tol))| (have - want).abs() > *tol + EXACT || have.is_nan())
        .map(|(ns, (have, want, tol))| {
            format!("{ns}: hours sum to {have}, truth over the span {want:.6}, allowed {tol:.6}")
        })
        .collect()
}

/// Every quirk with every time shape and every basis, on both engines.
#[test]
fn every_quirk_with_every_time_shape_and_basis_bills_the_truth() {
    let mut failures = Vec::new();
    for (i, (quirk, opts)) in quirks().into_iter().enumerate() {
        let opts = shaped(opts);
        failures.extend(composition(&format!("matrix-{i}"), quirk, &opts));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Seeded random compositions of the same quirks and shapes: which replicas, offsets, restarts,
/// tenants and outages each has is drawn from the seed (printed on failure).
#[test]
fn random_compositions_bill_the_truth() {
    let seed: u64 = std::env::var("MATRIX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_206);
    let mut failures = Vec::new();
    for k in 0..2u64 {
        let opts = random_composition(seed + k);
        let what = format!("seed {} ({opts:?})", seed + k);
        failures.extend(composition(&format!("random-{k}"), &what, &opts));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A composition drawn from `seed` with a small xorshift (no dependency for a few draws).
fn random_composition(seed: u64) -> Options {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut draw = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let replicas = 1 + draw(2) as usize;
    let aligned = draw(2) == 0;
    let sharded = replicas > 1 && draw(2) == 0;
    let offsets: Vec<i64> = (0..replicas)
        .map(|r| if aligned { 7 } else { 7 + 6 * r as i64 })
        .collect();
    let outage_at = 1.0 + draw(4) as f64 + draw(50) as f64 / 60.0;
    let outage_len = (1 + draw(13)) as f64 / 60.0;
    Options {
        hours: 6,
        random_namespaces: 6,
        seed: seed % 1000,
        ksm_offsets: offsets,
        ksm_sharded: sharded,
        ksm_restarts: if draw(2) == 0 {
            vec![1.0 + draw(40) as f64 / 10.0]
        } else {
            Vec::new()
        },
        tenant_series: draw(2) == 0,
        outages: vec![(outage_at, outage_at + outage_len)],
        interval_change: (draw(2) == 0).then_some((4.0 + draw(50) as f64 / 60.0, 15)),
        gpu_fleet: true,
        pod_resources: true,
        scheduler_metric: true,
        ..Options::default()
    }
}

/// An HA pair of Prometheus servers writing one store without deduplication (remote write
/// from both replicas, each series twice with its `prometheus_replica`): every source is
/// duplicated, kube-state-metrics, cAdvisor, dcgm-exporter and `up`, scraped by each replica
/// at its own moments, or at the same ones. With every time shape and basis, on both engines,
/// each namespace-hour equals the truth: copies are counted by their samples, never twice.
/// (Both replicas miss the same outages: the generator's outage adds namespaces of its own.)
#[test]
fn an_ha_prometheus_pair_without_deduplication_bills_the_truth() {
    let mut failures = Vec::new();
    for (k, (a, b)) in [((7, 11), (19, 23)), ((7, 11), (7, 11))]
        .into_iter()
        .enumerate()
    {
        let replica = |(ksm, cadvisor): (i64, i64), name: &str| {
            shaped(Options {
                random_namespaces: 6,
                seed: 105,
                ksm_offsets: vec![ksm],
                cadvisor_offset: cadvisor,
                external_labels: vec![("prometheus_replica".into(), name.into())],
                ..Options::default()
            })
        };
        let pair = [
            replica(a, "prometheus-k8s-0"),
            replica(b, "prometheus-k8s-1"),
        ];
        let what = format!("HA pair scraping at {a:?} and {b:?}");
        failures.extend(compose(&what, &pair[0], || {
            [
                (
                    "prometheus",
                    common::start_store_prometheus(&format!("ha-{k}"), &pair).0,
                ),
                (
                    "victoria-metrics",
                    common::start_store_victoria_metrics(&format!("ha-{k}-vm"), &pair).0,
                ),
            ]
        }));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One composition on both engines and every basis: the failures, each named.
fn composition(name: &str, what: &str, opts: &Options) -> Vec<String> {
    compose(what, opts, || {
        [
            ("prometheus", common::start_prometheus(name, opts)),
            (
                "victoria-metrics",
                common::start_victoria_metrics(&format!("{name}-vm"), opts),
            ),
        ]
    })
}

/// [`composition`] on the stores `start` loads (`opts` says their time shapes).
fn compose(
    what: &str,
    opts: &Options,
    start: impl FnOnce() -> [(&'static str, TestPrometheus); 2],
) -> Vec<String> {
    let mut failures = Vec::new();
    let stored_until = opts.stored_until.map(|h| opts.start + (h * 3600.0) as i64);
    for (engine, p) in start() {
        let truth = common::truth(&p);
        let since = p.dataset.first_truth_hour;
        // The hours the store holds in full; the one after them waits.
        let until = stored_until.map_or(p.dataset.data_end, |t| t - t.rem_euclid(3600));
        for basis in bases() {
            let out = dry_run(&p, since, until, basis.flags);
            if out.code != 0 {
                failures.push(format!(
                    "{what}, {engine}, {}: exit {}: {}",
                    basis.name,
                    out.code,
                    out.stderr.lines().last().unwrap_or("")
                ));
                continue;
            }
            let messages: Value = serde_json::from_str(&out.stdout).unwrap();
            for f in compare(&truth, &basis, messages.as_array().unwrap(), since, until) {
                failures.push(format!("{what}, {engine}, {}: {f}", basis.name));
            }
            if basis.name == "usage" {
                for f in add_up(&truth, messages.as_array().unwrap(), since, until) {
                    failures.push(format!("{what}, {engine}, usage over the span: {f}"));
                }
            }
        }
        if until < p.dataset.data_end {
            // The lagging hour waits, whichever source the requests come from: a dry-run of
            // it is refused with the waiting code.
            for flags in [&[][..], &["--request-source", "scheduler"][..]] {
                let out = dry_run(&p, until, until + 3600, flags);
                if out.code != 7 {
                    failures.push(format!(
                        "{what}, {engine} {flags:?}: the hour the store lags in was not refused \
                         as waiting: exit {}: {}",
                        out.code, out.stderr
                    ));
                }
            }
        }
    }
    failures
}
