//! Which series are believed, and for how long (README, "Trust"): a source that stopped pages
//! (exit 4, every mode) where lag waits; a platform exporter under another job name is refused
//! naming the jobs that write its metrics; `check` names the jobs it does not believe.
//! Scheduled runs publish to librdkafka's mock cluster (the `test-hooks` transport).
#![cfg(feature = "test-hooks")]

mod common;

use common::{Outcome, TestPrometheus, bin, rfc3339, run, scheduled};
use consumption_metrics_synth::scenario::Options;
use serde_json::Value;

const H: i64 = 3600;

fn dry_run(p: &TestPrometheus, since: i64, until: i64, extra: &[&str]) -> Outcome {
    run(bin()
        .args([
            "--prometheus-url",
            &p.url,
            "--cluster-name",
            "synth-01",
            "--dry-run",
        ])
        .args(["--since", &rfc3339(since), "--until", &rfc3339(until)])
        .args(["--now", "2026-11-02T00:00:00Z"])
        .args(extra))
}

/// kube-state-metrics stops answering at 03:00 (its `up` goes on at 0, as Prometheus writes
/// it): two hours later a scheduled run waits (exit 0, remote write may lag), a dry-run says
/// waiting (7); past --max-source-silence (4h) every mode fails with exit 4, naming the
/// exporter and its newest sample, and the checkpoint stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_exporter_pages_where_lag_waits() {
    let opts = Options {
        hours: 9,
        random_namespaces: 3,
        ksm_stops_at: Some(3.0),
        ..Options::default()
    };
    let p = common::start_prometheus("ksm-stops", &opts);
    let t = |h: i64| opts.start + h * H;

    let out = dry_run(&p, t(2), t(3), &[]);
    assert_eq!(
        out.code, 0,
        "the hour before the stop is billed: {}",
        out.stderr
    );
    let out = dry_run(&p, t(3), t(5), &[]);
    assert_eq!(out.code, 7, "two hours behind is lag: {}", out.stderr);
    let out = dry_run(&p, t(3), t(8), &[]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    for needle in [
        "kube-state-metrics has stopped",
        "in the reference namespaces kube-system|openshift-monitoring) is 2026-11-01T02:59:",
        "--max-source-silence 4h",
    ] {
        assert!(out.stderr.contains(needle), "{needle:?} in {}", out.stderr);
    }

    let (outcome, checkpoint) = scheduled(&p, "2026-11-01T03:00:00Z", "2026-11-01T05:20:00Z").await;
    assert_eq!(outcome, Ok(()), "a scheduled run waits for lag");
    assert_eq!(checkpoint, "2026-11-01T03:00:00Z");
    let (outcome, checkpoint) = scheduled(&p, "2026-11-01T03:00:00Z", "2026-11-01T08:20:00Z").await;
    let (code, message) = outcome.expect_err("a stopped source fails the scheduled run");
    assert_eq!(code, 4, "{message}");
    assert!(
        message.contains("kube-state-metrics has stopped"),
        "{message}"
    );
    assert_eq!(checkpoint, "2026-11-01T03:00:00Z");
}

/// kube-state-metrics in two shards (each object on the one its UID hashes to), shard 1's
/// scrapes failing from 03:30 on while Prometheus goes on scraping it (`up` 0): the hour before
/// bills every namespace of both shards, as a cluster of one replica does; the hour it stalls
/// in waits naming the shard's target (a dry-run 7, a scheduled run 0 with the checkpoint
/// kept), though the reference namespaces are current; past --max-source-silence every mode
/// fails with exit 4 naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_shard_holds_its_hour_and_then_pages() {
    let sharded = Options {
        hours: 9,
        random_namespaces: 8,
        ksm_offsets: vec![7, 19],
        ksm_sharded: true,
        ksm_target_gaps: vec![(1, 3.5, 9.0)],
        ..Options::default()
    };
    let p = common::start_prometheus("ksm-shard-stalls", &sharded);
    let t = |h: i64| sharded.start + h * H;
    let out = dry_run(&p, t(2), t(3), &[]);
    assert_eq!(out.code, 0, "the hour before the stall: {}", out.stderr);
    let billed: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let billed = common::by_namespace_hour(&billed, "synth-01");
    let truth = common::truth(&p);
    let rows: Vec<_> = truth
        .iter()
        .filter(|r| r.hour == t(2))
        .filter(|r| !r.namespace.starts_with("kube-") && !r.namespace.starts_with("openshift-"))
        .collect();
    assert_eq!(billed.len(), rows.len(), "every namespace billed once");
    let mut compared = 0;
    for row in rows {
        let got = billed
            .get(&(t(2), row.namespace.clone()))
            .and_then(|c| c["cpu"].as_f64())
            .unwrap_or(f64::NAN);
        assert!(
            (got - row.cpu_request_spec).abs() <= row.tol_cpu_request + 1e-6,
            "{}: billed {got}, truth {} ± {}",
            row.namespace,
            row.cpu_request_spec,
            row.tol_cpu_request
        );
        compared += 1;
    }
    assert!(
        compared >= 8,
        "both shards' namespaces compared: {compared}"
    );

    let out = dry_run(&p, t(3), t(5), &[]);
    assert_eq!(out.code, 7, "a shard behind holds its hour: {}", out.stderr);
    for needle in [
        "kube-state-metrics target 10.128.0.12:8080",
        "2026-11-01T03:00:00Z",
    ] {
        assert!(out.stderr.contains(needle), "{needle:?} in {}", out.stderr);
    }
    let (outcome, checkpoint) = scheduled(&p, "2026-11-01T03:00:00Z", "2026-11-01T05:20:00Z").await;
    assert_eq!(outcome, Ok(()), "a scheduled run waits for the shard");
    assert_eq!(checkpoint, "2026-11-01T03:00:00Z");

    let out = dry_run(&p, t(3), t(8), &[]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    for needle in [
        "kube-state-metrics target 10.128.0.12:8080 has stopped",
        "is 2026-11-01T03:29:",
        "--max-source-silence 4h",
    ] {
        assert!(out.stderr.contains(needle), "{needle:?} in {}", out.stderr);
    }
}

/// A remote-write shard lags: the store holds the reference namespaces' series (and `up`) to
/// the data's end, every other namespace's only to 04:30. The hour 04:00 is not held in full
/// though the reference namespaces say it is: a dry-run bills 03:00 and refuses 04:00 with
/// the waiting code (7), never exit 4 as a second exporter; a scheduled run publishes 03:00,
/// keeps the checkpoint at 04:00 and ends well.
#[tokio::test(flavor = "multi_thread")]
async fn a_reference_namespace_ahead_of_the_others_waits() {
    let opts = Options {
        hours: 6,
        random_namespaces: 8,
        others_stored_until: Some(4.5),
        ..Options::default()
    };
    let p = common::start_prometheus("reference-ahead", &opts);
    let t = |h: i64| opts.start + h * H;
    let out = dry_run(&p, t(3), t(5), &[]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    for needle in [
        "[2026-11-01T04:00:00Z, 2026-11-01T05:00:00Z)",
        "outside the reference namespaces",
    ] {
        assert!(out.stderr.contains(needle), "{needle:?} in {}", out.stderr);
    }
    assert!(!out.stderr.contains("second exporter"), "{}", out.stderr);
    let out = dry_run(&p, t(3), t(4), &[]);
    assert_eq!(out.code, 0, "the hour before is whole: {}", out.stderr);

    let (outcome, checkpoint) = scheduled(&p, "2026-11-01T03:00:00Z", "2026-11-01T05:20:00Z").await;
    assert_eq!(outcome, Ok(()), "a scheduled run waits");
    assert_eq!(
        checkpoint, "2026-11-01T04:00:00Z",
        "03:00 billed, 04:00 waits"
    );
}

/// Reading the targets' currency changes nothing of an hour scraped evenly: two replicas, no
/// hole, no restart, at 30 s and at 120 s (where a replica's newest sample at the first step of
/// the span's last minutes lies before them): every hour is weighed as one (`3600 / n`), never
/// cut into segments, which would bill the same at several times the cost.
#[test]
fn an_evenly_scraped_hour_stays_one_piece() {
    for interval in [30, 120] {
        let opts = Options {
            hours: 4,
            interval,
            random_namespaces: 3,
            ..Options::default()
        };
        let p = common::start_prometheus(&format!("even-{interval}"), &opts);
        let t = |h: i64| opts.start + h * H;
        let out = dry_run(&p, t(1), t(4), &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            !out.stderr.contains("scraped unevenly"),
            "{interval} s: {}",
            out.stderr
        );
    }
}

/// dcgm-exporter uninstalled at 02:00 under --gpu-source devices: hours before are billed;
/// from 4 hours later every run fails naming dcgm-exporter, instead of waiting forever.
#[test]
fn an_uninstalled_dcgm_exporter_pages() {
    let opts = Options {
        hours: 8,
        random_namespaces: 2,
        gpu_fleet: true,
        dcgm_stops_at: Some(2.0),
        ..Options::default()
    };
    let p = common::start_prometheus("dcgm-stops", &opts);
    let t = |h: i64| opts.start + h * H;
    let devices = ["--gpu-source", "devices"];
    let out = dry_run(&p, t(1), t(2), &devices);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = dry_run(&p, t(2), t(7), &devices);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("dcgm-exporter has stopped: its newest sample (DCGM_FI_DEV_FB_USED)"),
        "{}",
        out.stderr
    );
    // The requests source does not read dcgm-exporter: its hours are billed.
    let out = dry_run(
        &p,
        t(2),
        t(7),
        &["--gpu-resource", "nvidia.com/gpu.shared=1/2"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// The platform's kube-state-metrics under a job the defaults do not know: the run refuses,
/// naming the jobs that write the metric and the setting; `check` fails the same line. With
/// tenants' look-alikes beside the platform's exporters, `check` names the tenants' job and
/// its series per source (a warning) and passes.
#[test]
fn jobs_that_are_not_believed_are_named() {
    let opts = Options {
        hours: 4,
        random_namespaces: 3,
        gpu_fleet: true,
        tenant_series: true,
        ..Options::default()
    };
    let p = common::start_prometheus("tenants", &opts);
    let t = |h: i64| opts.start + h * H;
    let out = dry_run(
        &p,
        t(2),
        t(3),
        &[
            "--kube-state-metrics-selector",
            r#"job="kube-state-metrics-main""#,
        ],
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    for needle in [
        r#"no kube_namespace_status_phase series of the platform's kube-state-metrics ({job="kube-state-metrics-main"})"#,
        r#""kube-state-metrics" ("#,
        r#""tenant-exporter" ("#,
        "--kube-state-metrics-selector (KUBE_STATE_METRICS_SELECTOR)",
    ] {
        assert!(out.stderr.contains(needle), "{needle:?} in {}", out.stderr);
    }

    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("checkpoint");
    std::fs::write(&cp, "2026-11-01T02:00:00Z\n").unwrap();
    let check = |extra: &[&str]| {
        run(bin()
            .arg("check")
            .args(["--prometheus-url", &p.url, "--cluster-name", "synth-01"])
            .args(["--now", "2026-11-01T04:10:00Z", "--output", "json"])
            .args(["--gpu-source", "devices", "--cpu-basis", "max"])
            .args(["--gpu-resource", "nvidia.com/gpu.shared=1/2"])
            .arg("--checkpoint-file")
            .arg(&cp)
            .args(extra))
    };
    let out = check(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let lines = common::check_lines(&out);
    for (source, believed) in [
        ("kube-state-metrics", r#""kube-state-metrics" ("#),
        ("dcgm-exporter", r#""nvidia-dcgm-exporter" ("#),
    ] {
        let (_, verdict, detail) = lines
            .iter()
            .find(|l| l.0 == format!("provenance {source}"))
            .unwrap_or_else(|| panic!("no provenance line for {source}: {lines:?}"));
        assert_eq!(verdict, "warn", "{detail}");
        assert!(
            detail.contains(believed)
                && detail.contains(r#"Not believed, and changing no bill: "tenant-exporter" ("#),
            "{detail}"
        );
    }
    let (_, verdict, _) = lines
        .iter()
        .find(|l| l.0 == "provenance cadvisor")
        .expect("cadvisor line with --cpu-basis max");
    assert_eq!(verdict, "ok");

    let out = check(&[
        "--kube-state-metrics-selector",
        r#"job="kube-state-metrics-main""#,
    ]);
    assert_eq!(out.code, 4, "{}", out.stdout);
    let lines = common::check_lines(&out);
    let (_, verdict, detail) = lines
        .iter()
        .find(|l| l.0 == "provenance kube-state-metrics")
        .unwrap();
    assert_eq!(verdict, "fail", "{detail}");
    assert!(detail.contains("other jobs write its metrics"), "{detail}");
}

/// A gateway in front of the test Prometheus that, as Mimir and Cortex do, refuses a query
/// without the tenant header (`401 no org id`) and forwards one with `X-Scope-OrgID: <tenant>`.
fn tenant_gateway(upstream: String, tenant: &'static str) -> common::ScriptedHttp {
    common::routed_http(move |head| {
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default().to_string();
        let headers: Vec<String> = head.lines().skip(1).map(str::to_ascii_lowercase).collect();
        if !headers
            .iter()
            .any(|h| *h == format!("x-scope-orgid: {tenant}"))
        {
            return (401, "text/plain", "no org id".to_string());
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/");
        let body = head.lines().last().unwrap_or_default();
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "-X",
                "POST",
                "--data-binary",
                body,
            ])
            .args(["-H", "Content-Type: application/x-www-form-urlencoded"])
            .arg(format!("{upstream}{path}"))
            .output()
            .expect("curl forwards the query");
        (
            200,
            "application/json",
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    })
}

/// A central store with tenancy: without the tenant header every query is refused (exit 4,
/// the store's answer named); with `--prometheus-header X-Scope-OrgID=…`, or the value read
/// from a file by `--prometheus-header-file` (never printed, also not with debug logs), the
/// dry-run is byte for byte the one against the store directly.
#[test]
fn a_tenant_header_reaches_a_store_that_requires_it() {
    let p = common::standard();
    let gateway = tenant_gateway(p.url.clone(), "tenant-a7f3");
    let hour = |url: &str, extra: &[&str]| {
        run(bin()
            .args([
                "--prometheus-url",
                url,
                "--cluster-name",
                "synth-01",
                "--dry-run",
            ])
            .args([
                "--since",
                "2026-11-01T03:00:00Z",
                "--until",
                "2026-11-01T04:00:00Z",
            ])
            .args(["--now", "2026-11-02T00:00:00Z", "--prometheus-retries", "0"])
            .env("RUST_LOG", "debug")
            .args(extra))
    };
    let direct = hour(&p.url, &[]);
    assert_eq!(direct.code, 0, "{}", direct.stderr);

    let refused = hour(&gateway.url, &[]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("no org id"), "{}", refused.stderr);

    let flag = hour(
        &gateway.url,
        &["--prometheus-header", "X-Scope-OrgID=tenant-a7f3"],
    );
    assert_eq!(flag.code, 0, "{}", flag.stderr);
    assert_eq!(flag.stdout, direct.stdout);

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("org-id");
    std::fs::write(&secret, "tenant-a7f3\n").unwrap();
    let file = hour(
        &gateway.url,
        &[
            "--prometheus-header-file",
            &format!("X-Scope-OrgID={}", secret.display()),
            "--prometheus-flavor",
            "mimir",
        ],
    );
    assert_eq!(file.code, 0, "{}", file.stderr);
    assert_eq!(file.stdout, direct.stdout);
    assert!(!file.stderr.contains("tenant-a7f3"), "{}", file.stderr);
    let check = run(bin()
        .args([
            "--prometheus-url",
            &gateway.url,
            "--cluster-name",
            "synth-01",
        ])
        .args(["--dry-run", "--check-config"])
        .args([
            "--prometheus-header-file",
            &format!("X-Scope-OrgID={}", secret.display()),
        ]));
    assert!(!check.stdout.contains("tenant-a7f3"), "{}", check.stdout);

    let missing = hour(
        &gateway.url,
        &[
            "--prometheus-header-file",
            "X-Scope-OrgID=/nonexistent/org-id",
        ],
    );
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("--prometheus-header-file")
            && missing.stderr.contains("/nonexistent/org-id"),
        "{}",
        missing.stderr
    );
}
