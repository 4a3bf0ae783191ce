//! `consumption-metrics check` against real Prometheus stores: a healthy one passes every line
//! (and its text is a snapshot), and each way a store cannot be billed right fails its own
//! line with what to do and the run's exit code: a missing metric, kube-state-metrics scraped
//! without honor_labels, two clusters in one store, a checkpoint the store no longer covers.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::{Outcome, TestPrometheus, bin, check_lines as lines, run, standard};
use consumption_metrics_synth::scenario::Options;

/// The newest settled hour is 04:00–05:00 of the synthetic day (settle delay 10 minutes).
const NOW: &str = "2026-11-01T05:30:00Z";

fn check(url: &str, checkpoint: &Path, extra: &[&str]) -> Outcome {
    run(bin()
        .arg("check")
        .args(["--prometheus-url", url, "--cluster-name", "synth-01"])
        .args(["--now", NOW, "--cpu-basis", "max"])
        .args([
            "--storage-tier",
            "gold=premium",
            "--storage-tier",
            "cephfs=basic",
        ])
        .arg("--checkpoint-file")
        .arg(checkpoint)
        .args(extra))
}

fn checkpoint_at(dir: &Path, value: &str) -> std::path::PathBuf {
    let p = dir.join("checkpoint");
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p
}

fn line<'a>(lines: &'a [(String, String, String)], check: &str) -> &'a (String, String, String) {
    lines
        .iter()
        .find(|l| l.0 == check)
        .unwrap_or_else(|| panic!("no check {check} in {lines:?}"))
}

/// The text report with what differs between runs (ports, temporary paths) replaced.
fn stable(text: &str, url: &str, dir: &Path) -> String {
    text.replace(url, "http://PROMETHEUS")
        .replace(&dir.display().to_string(), "DIR")
}

#[test]
fn a_healthy_store_passes_every_check() {
    let p = standard();
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-11-01T03:00:00Z");
    let out = check(
        &p.url,
        &cp,
        &["--gpu-resource", "nvidia.com/gpu.shared=1/4"],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    insta::assert_snapshot!("check_healthy", stable(&out.stdout, &p.url, dir.path()));
    let json = check(
        &p.url,
        &cp,
        &[
            "--output",
            "json",
            "--gpu-resource",
            "nvidia.com/gpu.shared=1/4",
        ],
    );
    assert_eq!(json.code, 0);
    let l = lines(&json);
    assert!(l.iter().all(|(_, v, _)| v != "fail"), "{l:?}");
    for metric in [
        "kube_namespace_status_phase",
        "kube_pod_container_resource_requests",
        "container_cpu_usage_seconds_total",
    ] {
        assert_eq!(line(&l, metric).1, "ok", "{metric}");
    }
    assert!(line(&l, "hour").2.contains("a run bills"), "{l:?}");
    assert!(
        line(&l, "retention")
            .2
            .contains("the hour after the checkpoint")
    );
    // It read, it did not write.
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap(),
        "2026-11-01T03:00:00Z\n"
    );
}

/// A store without the pods' requests, as with a kube-state-metrics that does not export
/// them: that line fails with what to check, and the exit code is the data's (4).
#[test]
fn a_missing_metric_fails_its_line() {
    static P: OnceLock<TestPrometheus> = OnceLock::new();
    let p = P.get_or_init(|| {
        common::start_prometheus(
            "check-missing",
            &Options {
                hours: 6,
                random_namespaces: 5,
                omit_metrics: vec!["kube_pod_container_resource_requests".into()],
                ..Options::default()
            },
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-11-01T03:00:00Z");
    let out = check(&p.url, &cp, &["--output", "json"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let l = lines(&out);
    let (_, verdict, detail) = line(&l, "kube_pod_container_resource_requests");
    assert_eq!(verdict, "fail");
    assert!(
        detail.contains("no series with the labels namespace, pod, uid, container, resource")
            && detail.contains("kube-state-metrics v2 is scraped"),
        "{detail}"
    );
    assert_eq!(line(&l, "kube_pod_status_phase").1, "ok");
}

/// kube-state-metrics scraped without honor_labels fails the honor_labels line with the fix.
#[test]
fn a_store_without_honor_labels_fails_with_the_fix() {
    let (p, _) = common::start_store_prometheus(
        "check-no-honor",
        &[Options {
            hours: 6,
            random_namespaces: 5,
            honor_labels: false,
            ..Options::default()
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-11-01T03:00:00Z");
    let out = check(&p.url, &cp, &["--output", "json"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let l = lines(&out);
    let (_, verdict, detail) = line(&l, "honor_labels");
    assert_eq!(verdict, "fail");
    assert!(
        detail.contains("exported_namespace") && detail.contains("honorLabels: true"),
        "{detail}"
    );
}

/// Two clusters in one store: the clusters line fails and names the selector; with it, the
/// same store passes.
#[test]
fn a_mixed_store_fails_until_scoped() {
    let opts: Vec<Options> = ["east", "west"]
        .into_iter()
        .map(|c| Options {
            hours: 6,
            random_namespaces: 5,
            external_labels: vec![("cluster".into(), c.into())],
            ..Options::default()
        })
        .collect();
    let (p, _) = common::start_store_prometheus("check-mixed", &opts);
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-11-01T03:00:00Z");
    let out = check(&p.url, &cp, &["--output", "json"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let l = lines(&out);
    let (_, verdict, detail) = line(&l, "clusters");
    assert_eq!(verdict, "fail");
    assert!(
        detail.contains(r#"--prometheus-selector 'cluster="east"'"#),
        "{detail}"
    );
    let out = check(
        &p.url,
        &cp,
        &[
            "--output",
            "json",
            "--prometheus-selector",
            r#"cluster="west""#,
        ],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let l = lines(&out);
    assert_eq!(line(&l, "clusters").2, r#"one cluster (cluster="west")"#);
    assert!(
        line(&l, "prometheus")
            .2
            .contains(r#"scoped to {cluster="west"}"#)
    );
}

/// A checkpoint older than the store's data: a run would stop at its next hour; check says
/// so before the first invoice, with the runbook's command.
#[test]
fn a_checkpoint_the_store_does_not_cover_fails_retention() {
    let p = standard();
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-10-20T00:00:00Z");
    let out = check(
        &p.url,
        &cp,
        &["--gpu-resource", "nvidia.com/gpu.shared=1/4"],
    );
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let retention = out
        .stdout
        .lines()
        .find(|l| l.contains("retention"))
        .unwrap();
    assert!(
        retention.starts_with("FAIL")
            && retention.contains("2026-10-20T00:00:00Z")
            && retention.contains("checkpoint set --to"),
        "{retention}"
    );
    assert!(out.stdout.contains("1 checks failed"), "{}", out.stdout);
}

/// The Kafka lines against the real broker over mutual TLS: the topic's `max.message.bytes`,
/// read with DescribeConfigs, holds a part of `--max-message-bytes` or the line fails with the
/// size to set (exit 5, the output class); a topic without the setting is a warning, and a
/// missing topic fails the connection line. Nothing is written to any topic.
#[test]
fn the_kafka_lines_read_the_topic_limit() {
    let p = standard();
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-11-01T03:00:00Z");
    let kafka = common::kafka::start_kafka("check-kafka");
    kafka.create_topic("plain");
    kafka.create_topic_with("small", &[("max.message.bytes", "500000")]);
    kafka.create_topic_with("large", &[("max.message.bytes", "2000000")]);
    let gpu = ["--gpu-resource", "nvidia.com/gpu.shared=1/4"];
    let kafka_check = |topic: &str| {
        let mut args: Vec<String> = gpu.iter().map(|s| s.to_string()).collect();
        args.extend(kafka.flags(topic));
        args.extend(["--output".into(), "json".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check(&p.url, &cp, &args)
    };

    // Per topic: the exit code, and the message-size line's verdict and what it says.
    for (topic, code, verdict, says) in [
        ("large", 0, "ok", "batches of 2000000 bytes"),
        ("small", 5, "fail", "lower --max-message-bytes to 493950"),
        ("plain", 0, "warn", "do not report"),
    ] {
        let out = kafka_check(topic);
        assert_eq!(out.code, code, "{topic}: {}\n{}", out.stdout, out.stderr);
        let l = lines(&out);
        assert_eq!(line(&l, "kafka").1, "ok", "{topic}: {l:?}");
        let size = line(&l, "kafka message size");
        assert!(
            size.1 == verdict && size.2.contains(says),
            "{topic}: {size:?}"
        );
    }

    let out = kafka_check("absent");
    assert_eq!(out.code, 5, "{}\n{}", out.stdout, out.stderr);
    let l = lines(&out);
    assert_eq!(line(&l, "kafka").1, "fail", "{l:?}");
    assert!(l.iter().all(|x| x.0 != "kafka message size"), "{l:?}");
    assert!(
        kafka
            .consume("plain", 0, std::time::Duration::from_secs(2))
            .is_empty(),
        "check wrote to the topic"
    );
}

/// Time as the store has it: a 12-minute Prometheus outage in the newest settled hour is a
/// `warn` that names the hole (a run bridges it); a store whose data ends inside the newest
/// settled hour warns that a run waits, with the newest sample; a hole over --max-scrape-gap
/// fails the line with the flag.
#[test]
fn the_store_time_lines_show_holes_and_lag() {
    let p = common::start_prometheus(
        "check-time",
        &Options {
            hours: 6,
            random_namespaces: 4,
            outages: vec![(4.0 + 20.0 / 60.0, 4.0 + 32.0 / 60.0)],
            stored_until: Some(5.25),
            ..Options::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-11-01T03:00:00Z");
    let out = check(&p.url, &cp, &["--output", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let l = lines(&out);
    let (_, verdict, detail) = line(&l, "scrape timeline");
    assert_eq!(verdict, "warn", "{detail}");
    assert!(
        detail.contains("without a sample from 2026-11-01T04:19:") && detail.contains("12m"),
        "{detail}"
    );
    assert_eq!(line(&l, "newest kube-state-metrics").1, "ok");

    let out = check(
        &p.url,
        &cp,
        &["--output", "json", "--max-scrape-gap", "10m"],
    );
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let l = lines(&out);
    let (_, verdict, detail) = line(&l, "scrape timeline");
    assert_eq!(verdict, "fail", "{detail}");
    assert!(detail.contains("--max-scrape-gap 10m"), "{detail}");

    // The store lags (its data ends at 05:15): one hour behind, then two. One line says how
    // far and that a run waits; the checks are of the newest hour it holds, and none fails.
    for now in ["2026-11-01T06:10:00Z", "2026-11-01T07:10:00Z"] {
        let late = run(common::bin()
            .arg("check")
            .args(["--prometheus-url", &p.url, "--cluster-name", "synth-01"])
            .args(["--now", now, "--output", "json"])
            .arg("--checkpoint-file")
            .arg(&cp));
        assert_eq!(late.code, 0, "{now}: {}\n{}", late.stdout, late.stderr);
        let l = lines(&late);
        let (_, verdict, detail) = line(&l, "store time");
        assert_eq!(verdict, "warn", "{detail}");
        assert!(
            detail.contains("its newest kube-state-metrics sample is 2026-11-01T05:14:")
                && detail.contains("a run waits for that hour")
                && detail.contains("[2026-11-01T04:00:00Z, 2026-11-01T05:00:00Z)"),
            "{now}: {detail}"
        );
        let failed: Vec<_> = l.iter().filter(|(_, v, _)| v == "fail").collect();
        assert!(failed.is_empty(), "{now}: {failed:?}");
        assert_eq!(line(&l, "hour").1, "ok", "{now}");
    }
}

/// A stateless cluster (no PVC, so kube-state-metrics writes no PVC series) passes: its PVC
/// lines warn that they cannot tell "no PVC" from "not scraped", and the exit is 0.
#[test]
fn a_cluster_without_pvcs_passes_with_a_warning() {
    let p = common::start_prometheus(
        "check-stateless",
        &Options {
            hours: 6,
            random_namespaces: 4,
            omit_metrics: [
                "kube_persistentvolumeclaim_resource_requests_storage_bytes",
                "kube_persistentvolumeclaim_info",
                "kube_persistentvolumeclaim_access_mode",
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-11-01T03:00:00Z");
    let out = check(&p.url, &cp, &["--output", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let l = lines(&out);
    for metric in [
        "kube_persistentvolumeclaim_resource_requests_storage_bytes",
        "kube_persistentvolumeclaim_info",
    ] {
        let (_, verdict, detail) = line(&l, metric);
        assert_eq!(verdict, "warn", "{metric}: {detail}");
        assert!(detail.contains("no PVC"), "{detail}");
    }
}

/// A store that accepts connections and never answers: check ends at its --deadline with the
/// lines decided so far and a failed `deadline` line, not after every query's timeout and
/// retries in turn.
#[test]
fn a_hanging_store_ends_at_the_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream); // read nothing, answer nothing
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_at(dir.path(), "2026-11-01T03:00:00Z");
    let started = std::time::Instant::now();
    let out = check(&url, &cp, &["--output", "json", "--deadline", "10s"]);
    let took = started.elapsed();
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(took < std::time::Duration::from_secs(40), "{took:?}");
    let l = lines(&out);
    let (_, verdict, detail) = line(&l, "deadline");
    assert_eq!(verdict, "fail");
    assert!(detail.contains("did not finish within 10s"), "{detail}");
    // The lines after the store's are still decided.
    assert_eq!(line(&l, "checkpoint").1, "ok");
}
