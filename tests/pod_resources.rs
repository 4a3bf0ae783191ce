//! Kubernetes 1.34+'s pod resources, end to end on real Prometheus and VictoriaMetrics: pod-level
//! requests (KEP-2837) and in-place resizes (KEP-1287), billed from kube-scheduler's
//! `kube_pod_resource_request` (`--request-source scheduler`) equal to `PodRequests` in every
//! namespace-hour, and from kube-state-metrics equal to the containers' specs with a warning
//! naming the pods. The data combines the quirks: two kube-state-metrics replicas, two
//! scheduler replicas (one restarted, both missing a scrape at once), a Prometheus outage,
//! kube-state-metrics' own scrape gap, native sidecars and overhead, unbound pods.

mod common;

use std::collections::BTreeMap;

use common::{Outcome, TestPrometheus, bin, rfc3339, run};
use consumption_metrics_synth::scenario::Options;
use consumption_metrics_synth::truth::TruthRow;
use serde_json::Value;

const CLUSTER: &str = "pods";
/// Float noise of sums over thousands of samples.
const EXACT: f64 = 1e-6;

fn options() -> Options {
    Options {
        hours: 6,
        random_namespaces: 6,
        seed: 41,
        sidecars: true,
        pod_resources: true,
        scheduler_metric: true,
        outages: vec![(2.0 + 50.0 / 60.0, 2.0 + 56.0 / 60.0)],
        ..Options::default()
    }
}

fn dry_run(p: &TestPrometheus, extra: &[&str]) -> Outcome {
    run(bin()
        .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
        .args(["--dry-run", "--bill-memory"])
        .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
        .args(["--until", &rfc3339(p.dataset.data_end)])
        .args(["--now", "2026-11-02T00:00:00Z"])
        .args(extra))
}

fn messages(out: &Outcome) -> BTreeMap<(i64, String), Value> {
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let messages: Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    common::by_namespace_hour(messages.as_array().unwrap(), CLUSTER)
}

fn billed(row: &TruthRow) -> bool {
    !(row.namespace.starts_with("kube-") || row.namespace.starts_with("openshift-"))
}

/// Every namespace-hour's cpu, ram and gpu against the truth the source can see: `scheduler`
/// the `PodRequests` columns, else the containers' specs. Returns the failures.
fn compare(
    truth: &[TruthRow],
    got: &BTreeMap<(i64, String), Value>,
    scheduler: bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    for r in truth.iter().filter(|r| billed(r)) {
        let Some(c) = got.get(&(r.hour, r.namespace.clone())) else {
            failures.push(format!("{} {}: not billed", rfc3339(r.hour), r.namespace));
            continue;
        };
        let (cpu, ram) = if scheduler {
            (r.cpu_request, r.ram)
        } else {
            (r.cpu_request_spec, r.ram_spec)
        };
        for (key, want, tol) in [
            ("cpu", cpu, r.tol_cpu_request),
            ("ram", ram, r.tol_ram),
            ("gpu", r.gpu, r.tol_gpu),
        ] {
            let have = c[key].as_f64().unwrap_or(f64::NAN);
            if (have - want).abs() > tol + EXACT || have.is_nan() {
                failures.push(format!(
                    "{} {} {key}: got {have}, truth {want:.6}, tolerance {tol:.6}",
                    rfc3339(r.hour),
                    r.namespace
                ));
            }
        }
    }
    failures
}

/// The scheduler source bills `PodRequests` in every namespace-hour on both engines; the
/// kube-state-metrics source bills the containers' specs and says which pods reserve more.
#[test]
fn each_source_bills_what_it_sees_and_the_scheduler_sees_what_kubernetes_reserves() {
    let opts = options();
    for (engine, p) in [
        (
            "prometheus",
            common::start_prometheus("pod-resources", &opts),
        ),
        (
            "victoria-metrics",
            common::start_victoria_metrics("pod-resources-vm", &opts),
        ),
    ] {
        let truth = common::truth(&p);
        let hour = |h: i64| p.dataset.first_truth_hour + (h - 1) * 3600;
        let podlevel = |got: &BTreeMap<(i64, String), Value>, h: i64, key: &str| {
            got[&(hour(h), "team-podlevel".to_string())][key]
                .as_f64()
                .unwrap()
        };

        let scheduler = dry_run(&p, &["--request-source", "scheduler"]);
        let got = messages(&scheduler);
        let failures = compare(&truth, &got, true);
        assert!(
            failures.is_empty(),
            "{engine} scheduler:\n{}",
            failures.join("\n")
        );
        // The pods in a full hour: 2 with no container request, 3 whose containers
        // request 0.5, 1 + 0.25 overhead, 1 beside a GPU: 7.25 cores, 20 GiB + 160 MiB.
        assert!((podlevel(&got, 1, "cpu") - 7.25).abs() <= EXACT, "{engine}");
        assert!((podlevel(&got, 1, "ram") - (20.0 + 160.0 / 1024.0)).abs() <= EXACT);
        assert!((podlevel(&got, 1, "gpu") - 1.0).abs() <= EXACT);
        assert!(
            !scheduler.stderr.contains("reserve more than"),
            "{engine}: the scheduler source warned about what it bills"
        );

        let ksm = dry_run(&p, &[]);
        let got = messages(&ksm);
        let failures = compare(&truth, &got, false);
        assert!(
            failures.is_empty(),
            "{engine} kube-state-metrics:\n{}",
            failures.join("\n")
        );
        // 16 % of what Kubernetes reserves there, and said so once, with the setting.
        assert!((podlevel(&got, 1, "cpu") - 0.75).abs() <= EXACT, "{engine}");
        let warning = ksm
            .stderr
            .lines()
            .filter(|l| l.contains("reserve more than their containers request"))
            .collect::<Vec<_>>();
        assert_eq!(warning.len(), 1, "{engine}: {}", ksm.stderr);
        // At 06:00, four pods of team-podlevel run, each of which kube-scheduler counts above
        // all its containers request (three request nothing at the container level).
        for pod in [
            "--request-source scheduler",
            "pods=4",
            "above_scheduler=4",
            "team-podlevel/pl-",
        ] {
            assert!(
                warning[0].contains(pod),
                "{engine}: {pod} not in {}",
                warning[0]
            );
        }
    }
}

/// An in-place resize inside an hour, on both sources, hour by hour: admitted within the
/// minute (both sources follow it), deferred half an hour (the scheduler counts the old,
/// larger request until it is admitted; kube-state-metrics the new spec at once), infeasible
/// (the scheduler keeps the old request; kube-state-metrics bills the spec never granted).
#[test]
fn resizes_are_billed_as_each_source_counts_them() {
    let p = common::start_prometheus("pod-resources-resize", &options());
    let hour = |h: i64| p.dataset.first_truth_hour + (h - 1) * 3600;
    let cpu = |out: &Outcome, h: i64| {
        messages(out)[&(hour(h), "team-resize".to_string())]["cpu"]
            .as_f64()
            .unwrap()
    };
    let (scheduler, ksm) = (
        dry_run(&p, &["--request-source", "scheduler"]),
        dry_run(&p, &[]),
    );
    let interval = 30.0 / 3600.0;
    // 01:00-02:00: up from 1 to 2 at 01:20 (admitted 01:20:40), down 2, infeasible 1.
    let up = 1.0 / 3.0 + 2.0 * 2.0 / 3.0;
    for out in [&scheduler, &ksm] {
        let want = up + 2.0 + 1.0;
        assert!(
            (cpu(out, 1) - want).abs() <= 2.0 * interval,
            "{} vs {want}",
            cpu(out, 1)
        );
    }
    // 02:00-03:00: down from 2 to 0.5 at 02:10, admitted 02:40.
    let (sched_down, spec_down) = (2.0 * 2.0 / 3.0 + 0.5 / 3.0, 2.0 / 6.0 + 0.5 * 5.0 / 6.0);
    let got = (cpu(&scheduler, 2), cpu(&ksm, 2));
    assert!(
        (got.0 - (2.0 + sched_down + 1.0)).abs() <= 2.0 * interval,
        "{got:?}"
    );
    assert!(
        (got.1 - (2.0 + spec_down + 1.0)).abs() <= 2.0 * interval,
        "{got:?}"
    );
    // 03:00-04:00: the infeasible resize to 8 at 03:15.
    let got = (cpu(&scheduler, 3), cpu(&ksm, 3));
    assert!((got.0 - 3.5).abs() <= EXACT, "{got:?}");
    assert!(
        (got.1 - (2.5 + 0.25 + 6.0)).abs() <= 8.0 * interval,
        "{got:?}"
    );
}

/// A pod kube-scheduler never wrote (every replica unscraped for its whole life in the hour)
/// is not billed 0: the hour is refused naming it, the hours before are not in doubt.
#[test]
fn a_pod_every_scheduler_replica_missed_is_refused() {
    let opts = Options {
        // team-churn/failing-0 is created at 03:08 and runs 03:10-03:40.
        scheduler_gaps: vec![(3.0 + 5.0 / 60.0, 3.0 + 45.0 / 60.0)],
        ..options()
    };
    let p = common::start_prometheus("pod-resources-missed", &opts);
    let out = dry_run(&p, &["--request-source", "scheduler"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("team-churn/failing-0")
            && out.stderr.contains("kube_pod_resource_request")
            && out.stderr.contains("--request-source kube-state-metrics"),
        "{}",
        out.stderr
    );
    // The hours before it bill.
    let before = run(bin()
        .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
        .args(["--dry-run", "--request-source", "scheduler"])
        .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
        .args(["--until", &rfc3339(p.dataset.first_truth_hour + 2 * 3600)])
        .args(["--now", "2026-11-02T00:00:00Z"]));
    assert_eq!(before.code, 0, "{}", before.stderr);
}

/// `check` says which pods the kube-state-metrics source cannot see and compares both sources
/// per namespace, naming the largest differences; the settings the scheduler cannot serve are
/// refused before anything is read.
#[test]
fn check_compares_the_sources_and_impossible_settings_are_refused() {
    let p = common::start_prometheus("pod-resources-check", &options());
    let dir = common::test_dir("pod-resources-check-checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("checkpoint");
    std::fs::write(&checkpoint, "2026-11-01T01:00:00Z\n").unwrap();
    // The newest settled hour: 03:00-04:00.
    let check = run(bin()
        .arg("check")
        .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
        .args(["--now", "2026-11-01T04:30:00Z", "--output", "json"])
        .arg("--checkpoint-file")
        .arg(&checkpoint));
    let lines = common::check_lines(&check);
    let line = |name: &str| {
        lines
            .iter()
            .find(|(c, _, _)| c == name)
            .unwrap_or_else(|| panic!("no {name} line: {}", check.stdout))
            .clone()
    };
    let (_, verdict, detail) = line("pod-level requests");
    assert_eq!(verdict, "warn", "{detail}");
    assert!(detail.contains("team-podlevel/pl-"), "{detail}");
    let (_, verdict, detail) = line("request sources");
    assert_eq!(verdict, "warn", "{detail}");
    assert!(
        detail.contains("largest: team-podlevel 0.750 vs 8.750"),
        "{detail}"
    );

    for (flags, says) in [
        (
            ["--cpu-request-model", "containers"],
            "drop --cpu-request-model containers",
        ),
        (["--cpu-basis", "max"], "--cpu-basis max compares"),
    ] {
        let out = dry_run(
            &p,
            &[&["--request-source", "scheduler"][..], &flags[..]].concat(),
        );
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(says), "{}", out.stderr);
    }
}
