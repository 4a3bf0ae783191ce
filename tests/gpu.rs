//! GPUs as the GPUs report themselves (`--gpu-source devices`) and as requests see them, on a
//! synthetic fleet built from dcgm-exporter's own sources (synth `fleet` module): whole GPUs,
//! MIG instances of two profiles, a time-sliced GPU shared by two pods, a GPU allocated through
//! DRA to a pod that requests nothing, a pod that starts and stops mid-hour, idle GPUs, two
//! exporter replicas and a restarted exporter. Every namespace-hour is compared with the
//! fleet's exact integral, per model, on a real Prometheus and a real VictoriaMetrics.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Outcome, TestPrometheus, bin, rfc3339, run, truth};
use consumption_metrics_synth::scenario::Options;
use consumption_metrics_synth::truth::TruthRow;
use serde_json::Value;

const CLUSTER: &str = "synth-01";
const H100: &str = "NVIDIA H100 80GB HBM3=h100";
const T4: &str = "Tesla T4=t4";
/// The devices source with both models of the fleet as keys.
const DEVICES_BY_MODEL: &[&str] = &[
    "--gpu-source",
    "devices",
    "--gpu-model",
    H100,
    "--gpu-model",
    T4,
];

/// The requests source with the fleet's three models as keys (the time-sliced T4 at 1/2).
const REQUESTS_BY_MODEL: &[&str] = &[
    "--gpu-resource",
    "nvidia.com/gpu.shared=1/2",
    "--gpu-model",
    H100,
    "--gpu-model",
    T4,
    "--gpu-model",
    "NVIDIA A100-SXM4-80GB=a100",
];

fn fleet(seed: u64, honor_labels: bool) -> Options {
    Options {
        hours: 5,
        random_namespaces: 4,
        seed,
        gpu_fleet: true,
        dcgm_honor_labels: honor_labels,
        ..Options::default()
    }
}

fn dry_run(p: &TestPrometheus, extra: &[&str]) -> Outcome {
    run(bin()
        .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
        .args(["--dry-run", "--cpu-basis", "request"])
        .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
        .args(["--until", &rfc3339(p.dataset.data_end)])
        .args(["--now", "2026-11-02T00:00:00Z"])
        .args(extra))
}

/// (hour start, namespace) → consumption.
fn billed(out: &Outcome) -> BTreeMap<(i64, String), Value> {
    assert_eq!(out.code, 0, "{}", out.stderr);
    let messages: Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let validator = common::schema_validator();
    let mut got = BTreeMap::new();
    for m in messages.as_array().unwrap() {
        let errors: Vec<String> = validator.iter_errors(m).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "the schema: {errors:?}\n{m}");
        let ts = m["header"]["consumption_start_ts"].as_str().unwrap();
        let hour = chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .timestamp();
        for e in m["payload"].as_array().unwrap() {
            let ns = e["external_id"].as_str().unwrap()[CLUSTER.len() + 1..].to_string();
            got.insert((hour, ns), e["consumption"].clone());
        }
    }
    got
}

fn billed_rows(p: &TestPrometheus) -> Vec<TruthRow> {
    truth(p)
        .into_iter()
        .filter(|r| !r.namespace.starts_with("kube-") && !r.namespace.starts_with("openshift-"))
        .collect()
}

/// Every namespace-hour's `gpu`, `gpu_h100` and `gpu_t4` equal the devices' truth within its
/// tolerance (exact where nothing changed), and no other namespace is billed (the exporter's
/// own `gpu-operator` least of all).
fn check_devices(engine: &str, p: &TestPrometheus, got: &BTreeMap<(i64, String), Value>) {
    let rows = billed_rows(p);
    let expected: BTreeSet<_> = rows.iter().map(|r| (r.hour, r.namespace.clone())).collect();
    let seen: BTreeSet<_> = got.keys().cloned().collect();
    assert_eq!(seen, expected, "{engine}: the billed namespace-hours");
    let mut failures = Vec::new();
    for r in &rows {
        let c = &got[&(r.hour, r.namespace.clone())];
        let model = |m: &str| r.gpu_devices_models.get(m).copied().unwrap_or(0.0);
        for (key, want) in [
            ("gpu", r.gpu_devices),
            ("gpu_h100", model(consumption_metrics_synth::fleet::H100)),
            ("gpu_t4", model(consumption_metrics_synth::fleet::T4)),
        ] {
            let have = c[key].as_f64().unwrap_or(f64::NAN);
            if (have - want).abs() > r.tol_gpu_devices + 1e-6 {
                failures.push(format!(
                    "{} {} {key}: billed {have}, truth {want} ± {}",
                    rfc3339(r.hour),
                    r.namespace,
                    r.tol_gpu_devices
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{engine}:\n{}", failures.join("\n"));
}

/// `opts` served by Prometheus and by VictoriaMetrics.
fn both_engines(name: &str, opts: &Options) -> [(&'static str, TestPrometheus); 2] {
    [
        ("prometheus", common::start_prometheus(name, opts)),
        (
            "victoria-metrics",
            common::start_victoria_metrics(&format!("{name}-vm"), opts),
        ),
    ]
}

fn row<'a>(rows: &'a [TruthRow], hour: i64, ns: &str) -> &'a TruthRow {
    rows.iter()
        .find(|r| r.hour == hour && r.namespace == ns)
        .unwrap()
}

/// The devices source bills every GPU as the GPUs report it, per model, on both engines: the
/// DRA-allocated T4 included, the time-sliced T4 split between its pods, MIG instances at
/// their slices, the batch pod from its start to its stop, idle GPUs to nobody.
#[test]
fn devices_bill_every_gpu_as_the_gpus_report_it() {
    for (engine, p) in both_engines("gpu-fleet", &fleet(5, true)) {
        let out = dry_run(&p, DEVICES_BY_MODEL);
        let got = billed(&out);
        check_devices(engine, &p, &got);
        // The cases, spelled out (hour 01:00 is the second hour of data).
        let rows = billed_rows(&p);
        let h1 = p.dataset.first_truth_hour;
        let gpu = |ns: &str, h: i64| got[&(h, ns.to_string())]["gpu"].as_f64().unwrap();
        assert!((gpu("team-train", h1) - 2.0).abs() < 1e-6);
        assert!((gpu("team-infer", h1) - 4.0 / 7.0).abs() < 1e-6);
        assert!(gpu("team-dra", h1) > 0.9, "{engine}: DRA GPUs are billed");
        // 02:00–03:00: lab-0 joins nb-0 on the shared T4 at 02:10.
        let h2 = h1 + 3600;
        let shared = gpu("team-notebook", h2) + gpu("team-lab", h2);
        assert!((shared - 1.0).abs() < 0.01, "{engine}: {shared}");
        assert!(
            (gpu("team-lab", h2) - row(&rows, h2, "team-lab").gpu_devices).abs() < 0.01,
            "{engine}"
        );
        assert!(
            !out.stderr.contains("Dynamic Resource Allocation"),
            "{engine}"
        );
    }
}

/// The requests source bills what it can see as the devices do (whole GPUs, MIG, the batch
/// pod) and warns, once, of the DRA pod it bills 0, naming `--gpu-source devices`.
#[test]
fn the_requests_source_agrees_where_it_sees_and_warns_of_dra() {
    let p = common::start_prometheus("gpu-fleet-requests", &fleet(6, true));
    let out = dry_run(&p, &["--gpu-resource", "nvidia.com/gpu.shared=1/2"]);
    let got = billed(&out);
    let rows = billed_rows(&p);
    for r in rows
        .iter()
        .filter(|r| ["team-train", "team-infer", "team-batch"].contains(&r.namespace.as_str()))
    {
        let have = got[&(r.hour, r.namespace.clone())]["gpu"].as_f64().unwrap();
        assert!(
            (have - r.gpu_devices).abs() <= r.tol_gpu_devices + r.tol_gpu + 1e-6,
            "{} {}: requests {have}, devices {}",
            rfc3339(r.hour),
            r.namespace,
            r.gpu_devices
        );
        assert!((have - r.gpu).abs() <= r.tol_gpu + 1e-6);
    }
    let dra_hours: Vec<_> = rows.iter().filter(|r| r.namespace == "team-dra").collect();
    assert!(!dra_hours.is_empty());
    for r in dra_hours {
        assert_eq!(
            got[&(r.hour, r.namespace.clone())]["gpu"].as_f64(),
            Some(0.0)
        );
    }
    let warnings = out
        .stderr
        .matches("pods hold devices through Dynamic Resource Allocation")
        .count();
    assert_eq!(warnings, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("team-dra/dra-0") && out.stderr.contains("--gpu-source devices"),
        "{}",
        out.stderr
    );
}

/// Scraped without `honor_labels` (the GPU Operator's ServiceMonitor, OpenShift), the pods are
/// read from `exported_namespace`/`exported_pod`, and the exporter's own namespace, which every
/// series then carries, is never billed.
#[test]
fn without_honor_labels_the_exported_labels_name_the_pods() {
    let p = common::start_prometheus("gpu-fleet-exported", &fleet(7, false));
    let out = dry_run(&p, DEVICES_BY_MODEL);
    check_devices("prometheus", &p, &billed(&out));
}

/// dcgm-exporter run with `--use-old-namespace` (`pod_namespace`, `pod_name`,
/// `container_name`: `internal/pkg/transformation/kubernetes.go`, the names of the 1.x pod
/// exporter), scraped with and without honor_labels: the old names are the pod's, beside the
/// target's own `namespace`/`pod`. Every GPU billed as held, on both engines.
#[test]
fn the_old_label_names_name_the_pods_on_both_engines() {
    for honor_labels in [false, true] {
        let opts = Options {
            dcgm_old_names: true,
            ..fleet(9, honor_labels)
        };
        let tag = if honor_labels { "honor" } else { "plain" };
        for (engine, p) in both_engines(&format!("gpu-old-names-{tag}"), &opts) {
            let out = dry_run(&p, DEVICES_BY_MODEL);
            check_devices(&format!("{engine} {tag}"), &p, &billed(&out));
        }
    }
}

/// dcgm-exporter with `KUBERNETES_VIRTUAL_GPUS` writes one copy of a time-sliced device's
/// series per replica a pod holds, labelled `vgpu` (`internal/pkg/transformation/
/// kubernetes.go`, `toDeviceToSharingPods`): nb-0 holds two replicas of the shared T4 and
/// lab-0 one, so from 02:10 they share it 2/3 and 1/3, with and without honor_labels, on both
/// engines; every other device as without the label.
#[test]
fn time_slicing_replicas_are_billed_k_of_n() {
    for honor_labels in [true, false] {
        let opts = Options {
            dcgm_virtual_gpus: true,
            ..fleet(11, honor_labels)
        };
        let tag = if honor_labels { "honor" } else { "plain" };
        for (engine, p) in both_engines(&format!("gpu-vgpu-{tag}"), &opts) {
            let got = billed(&dry_run(&p, DEVICES_BY_MODEL));
            check_devices(&format!("{engine} {tag}"), &p, &got);
            // 03:00–04:00: both hold it all hour.
            let h3 = p.dataset.first_truth_hour + 2 * 3600;
            let gpu = |ns: &str| got[&(h3, ns.to_string())]["gpu"].as_f64().unwrap();
            assert!(
                (gpu("team-notebook") - 2.0 / 3.0).abs() < 1e-6,
                "{engine} {tag}"
            );
            assert!((gpu("team-lab") - 1.0 / 3.0).abs() < 1e-6, "{engine} {tag}");
        }
    }
}

/// A fleet of 200 GPUs on nodes of eight (whole, MIG, time-sliced with `vgpu`), read in one
/// answer and, under a 1 MiB answer limit, in parts by the last character of each UUID: the
/// same bill, equal to the truth per namespace and model, on both engines.
#[test]
fn a_large_fleet_is_read_in_parts_and_billed_the_same() {
    let opts = Options {
        hours: 3,
        random_namespaces: 30,
        only_random: true,
        seed: 13,
        gpu_scale: 200,
        ..Options::default()
    };
    for (engine, p) in both_engines("gpu-scaled", &opts) {
        let whole = dry_run(&p, DEVICES_BY_MODEL);
        let parted = run(bin()
            .env("RUST_LOG", "consumption_metrics=debug")
            .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
            .args(["--dry-run", "--cpu-basis", "request"])
            .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
            .args(["--until", &rfc3339(p.dataset.data_end)])
            .args(["--now", "2026-11-02T00:00:00Z"])
            .args(["--prometheus-max-response-mib", "1"])
            .args(DEVICES_BY_MODEL));
        assert!(
            parted
                .stderr
                .contains("reading the GPU devices' summary in parts"),
            "{engine}: {}",
            parted.stderr
        );
        let (whole, parted) = (billed(&whole), billed(&parted));
        assert_eq!(whole, parted, "{engine}: one answer and parts bill alike");
        check_devices(engine, &p, &whole);
        let gpus: f64 = whole
            .iter()
            .filter(|((h, _), _)| *h == p.dataset.first_truth_hour)
            .map(|(_, c)| c["gpu"].as_f64().unwrap())
            .sum();
        // 25 nodes: 19 whole (7 of 8 held), 4 MIG (4/7 of each GPU held), 2 time-sliced.
        let want = 19.0 * 7.0 + 4.0 * 8.0 * 4.0 / 7.0 + 2.0 * 8.0;
        // Each entry is rounded to 6 decimals.
        assert!(
            (gpus - want).abs() < 5e-5,
            "{engine}: {gpus} GPU-hours, {want} held"
        );
    }
}

/// A GPU of a model `--gpu-model` does not map refuses the hour (exit 4), naming the model and
/// the flag; without `--gpu-model` no entry has a model key.
#[test]
fn an_unmapped_model_is_refused_and_no_flag_no_keys() {
    let p = common::start_prometheus("gpu-fleet-unmapped", &fleet(8, true));
    let out = dry_run(&p, &["--gpu-source", "devices", "--gpu-model", T4]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stdout.trim().is_empty() || out.stdout.trim() == "[]");
    assert!(
        out.stderr.contains("NVIDIA H100 80GB HBM3") && out.stderr.contains("--gpu-model"),
        "{}",
        out.stderr
    );
    let got = billed(&dry_run(&p, &["--gpu-source", "devices"]));
    for c in got.values() {
        assert!(
            c.as_object()
                .unwrap()
                .keys()
                .all(|k| !k.starts_with("gpu_")),
            "{c}"
        );
    }
}

/// `check` lists, for the newest settled hour, the GPUs seen per model, the GPU-hours nobody
/// held and the pods holding claims: a warning with the requests source, fine with devices.
#[test]
fn check_lists_gpus_per_model_idle_hours_and_claims() {
    let p = common::start_prometheus("gpu-fleet-check", &fleet(9, true));
    let dir = common::test_dir("gpu-fleet-check-cp");
    let checkpoint = dir.join("checkpoint");
    std::fs::write(&checkpoint, "2026-11-01T03:00:00Z\n").unwrap();
    let check = |extra: &[&str]| {
        let out = run(bin()
            .arg("check")
            .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
            .args(["--now", "2026-11-01T04:20:00Z", "--output", "json"])
            .arg("--checkpoint-file")
            .arg(&checkpoint)
            .args(extra));
        common::check_lines(&out)
            .into_iter()
            .map(|(check, verdict, detail)| (check, (verdict, detail)))
            .collect::<BTreeMap<String, (String, String)>>()
    };
    let requests = check(&["--gpu-resource", "nvidia.com/gpu.shared=1/2"]);
    let (verdict, detail) = &requests["gpu devices"];
    assert_eq!(verdict, "ok", "{detail}");
    // Four H100s (one as 3/7 + 1/7 + 1/7 of MIG) and three T4s.
    assert!(
        detail.contains("NVIDIA H100 80GB HBM3: 3.714286 GPUs")
            && detail.contains("Tesla T4: 3 GPUs"),
        "{detail}"
    );
    let (verdict, detail) = &requests["gpu idle"];
    assert_eq!(verdict, "ok", "{detail}");
    // The idle T4 and the idle 1g.10gb instance all hour; the batch H100 before 03:40:50 is
    // held, after it idle (19:10 of the hour).
    assert!(detail.contains("Tesla T4: 1 GPU-hours"), "{detail}");
    let (verdict, detail) = &requests["gpu dra"];
    assert_eq!(verdict, "warn", "{detail}");
    assert!(detail.contains("team-dra/dra-0") && detail.contains("--gpu-source devices"));
    let devices = check(&["--gpu-source", "devices", "--gpu-model", T4]);
    assert_eq!(devices["gpu dra"].0, "ok", "{:?}", devices["gpu dra"]);
    let (verdict, detail) = &devices["gpu models"];
    assert_eq!(verdict, "fail", "{detail}");
    assert!(detail.contains("NVIDIA H100 80GB HBM3"), "{detail}");
}

/// With the requests source, `--gpu-model` reads each pod's node (`kube_pod_info`) and the
/// node's GPU model (GPU Feature Discovery's `nvidia.com/gpu.product` on `kube_node_labels`):
/// every namespace-hour's `gpu_<model>` equals its requests' truth per model. A node whose
/// label kube-state-metrics does not export refuses the hour, naming the allowlist.
#[test]
fn the_requests_source_bills_models_by_the_nodes_gpu_product() {
    let opts = fleet(10, true);
    let dir = common::test_dir("gpu-fleet-node-models");
    let dataset = consumption_metrics_synth::write_dataset(&opts, &dir.join("data")).unwrap();
    let text = std::fs::read_to_string(&dataset.openmetrics).unwrap();
    let truth_rows: Vec<TruthRow> =
        serde_json::from_slice(&std::fs::read(&dataset.truth).unwrap()).unwrap();
    // The same data, with node-3's label not exported (kube-state-metrics without the
    // allowlist on that node's shard).
    let unlabelled: String = text
        .lines()
        .map(|l| {
            if l.starts_with("kube_node_labels{") && l.contains(r#"node="node-3""#) {
                let cut = l.find(",label_nvidia_com_gpu_product").unwrap();
                let rest = &l[l[cut..].find('}').unwrap() + cut..];
                format!("{}{rest}\n", &l[..cut])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let p = common::serve_prometheus(dir, dataset);
    let models = REQUESTS_BY_MODEL;
    let got = billed(&dry_run(&p, models));
    let mut failures = Vec::new();
    for r in truth_rows
        .iter()
        .filter(|r| !r.namespace.starts_with("kube-") && !r.namespace.starts_with("openshift-"))
    {
        let c = &got[&(r.hour, r.namespace.clone())];
        let model = |m: &str| r.gpu_models.get(m).copied().unwrap_or(0.0);
        for (key, want) in [
            ("gpu", r.gpu),
            ("gpu_h100", model(consumption_metrics_synth::fleet::H100)),
            ("gpu_t4", model(consumption_metrics_synth::fleet::T4)),
            ("gpu_a100", model(consumption_metrics_synth::fleet::A100)),
        ] {
            let have = c[key].as_f64().unwrap_or(f64::NAN);
            if (have - want).abs() > r.tol_gpu + 1e-6 {
                failures.push(format!(
                    "{} {} {key}: billed {have}, truth {want} ± {}",
                    rfc3339(r.hour),
                    r.namespace,
                    r.tol_gpu
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        got.values()
            .any(|c| c["gpu_a100"].as_f64().unwrap_or(0.0) > 0.0),
        "the hand-made and random pods' A100s are billed"
    );

    let dir = common::test_dir("gpu-fleet-node-unlabelled");
    let dataset = consumption_metrics_synth::write_dataset(&opts, &dir.join("data")).unwrap();
    std::fs::write(&dataset.openmetrics, unlabelled).unwrap();
    let p = common::serve_prometheus(dir, dataset);
    let out = dry_run(&p, models);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--metric-labels-allowlist=nodes=[nvidia.com/gpu.product]")
            && out.stderr.contains("--gpu-source devices"),
        "{}",
        out.stderr
    );
}

/// GPU Feature Discovery relabels node-3 at 02:20 (a MIG reconfiguration: its product label
/// takes a second value inside the hour). With `--gpu-model` on the requests source, a
/// scheduled run publishes 01:00, refuses 02:00 naming the node, the hour and the label (exit
/// 4), and leaves the checkpoint at 02:00; a dry-run over the span refuses it too. (The
/// scheduled run publishes to librdkafka's mock cluster: the `test-hooks` transport.)
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn a_gpu_model_change_inside_an_hour_is_refused_after_the_hours_before() {
    let opts = fleet(12, true);
    let dir = common::test_dir("gpu-fleet-node-relabelled");
    let dataset = consumption_metrics_synth::write_dataset(&opts, &dir.join("data")).unwrap();
    let cut = opts.start + 2 * 3600 + 20 * 60;
    let text = std::fs::read_to_string(&dataset.openmetrics).unwrap();
    let relabelled: String = text
        .lines()
        .map(|l| {
            let late = l
                .rsplit_once(' ')
                .and_then(|(_, t)| t.parse::<i64>().ok())
                .is_some_and(|t| t >= cut);
            if l.starts_with("kube_node_labels{") && l.contains(r#"node="node-3""#) && late {
                let at = l.find("label_nvidia_com_gpu_product=\"").unwrap();
                let value_end = l[at + 30..].find('"').unwrap() + at + 30;
                format!(
                    "{}label_nvidia_com_gpu_product=\"Tesla-T4{}\n",
                    &l[..at],
                    &l[value_end..]
                )
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&dataset.openmetrics, relabelled).unwrap();
    let p = common::serve_prometheus(dir, dataset);
    let flags = REQUESTS_BY_MODEL;
    let (outcome, checkpoint) =
        common::scheduled_with(&p, "2026-11-01T01:00:00Z", "2026-11-01T05:20:00Z", flags).await;
    let (code, message) = outcome.expect_err("the relabelled hour is refused");
    assert_eq!(code, 4, "{message}");
    for needle in [
        "[2026-11-01T02:00:00Z, 2026-11-01T03:00:00Z)",
        "node node-3",
        "nvidia.com/gpu.product",
        "--gpu-source devices",
    ] {
        assert!(message.contains(needle), "{needle:?} in {message}");
    }
    assert_eq!(checkpoint, "2026-11-01T02:00:00Z", "01:00 published first");
    let out = dry_run(&p, flags);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("node node-3"), "{}", out.stderr);
}

/// dcgm-exporter failing its scrapes (`up` 0, no device series) while everything else is
/// scraped, on both engines: 50 minutes across 02:00 and 100 minutes across 04:00 to 05:00
/// refuse every hour they touch (exit 4, naming the device, its node and the stretch), also the
/// hour whose read the hole reaches the edge of; 10 minutes across 07:00 are bridged, and the
/// hours around it equal the truth exactly (no hold changed near it).
#[test]
fn dcgm_exporter_holes_across_hours_are_refused_or_bridged() {
    let h = |hour: f64, minute: f64| hour + minute / 60.0;
    let opts = Options {
        hours: 9,
        random_namespaces: 2,
        seed: 88,
        gpu_fleet: true,
        dcgm_gaps: vec![
            (h(1.0, 40.0), h(2.0, 30.0)),
            (h(3.0, 20.0), h(5.0, 0.0)),
            (h(6.0, 55.0), h(7.0, 5.0)),
        ],
        ..Options::default()
    };
    let t = |hour: i64| opts.start + hour * 3600;
    for (engine, p) in both_engines("dcgm-holes", &opts) {
        let hour = |from: i64| {
            run(bin()
                .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
                .args([
                    "--dry-run",
                    "--cpu-basis",
                    "request",
                    "--gpu-source",
                    "devices",
                ])
                .args(["--since", &rfc3339(from), "--until", &rfc3339(from + 3600)])
                .args(["--now", "2026-11-02T00:00:00Z"]))
        };
        for refused in [1, 2, 3, 4, 5] {
            let out = hour(t(refused));
            assert_eq!(out.code, 4, "{engine} {refused}:00: {}", out.stderr);
            assert!(
                out.stderr
                    .contains("dcgm-exporter has no sample of the GPU")
                    && out.stderr.contains("--max-scrape-gap"),
                "{engine} {refused}:00: {}",
                out.stderr
            );
        }
        let rows = billed_rows(&p);
        for billed_hour in [6, 7, 8] {
            let got = billed(&hour(t(billed_hour)));
            for r in rows.iter().filter(|r| r.hour == t(billed_hour)) {
                let have = got[&(r.hour, r.namespace.clone())]["gpu"].as_f64().unwrap();
                assert!(
                    (have - r.gpu_devices).abs() <= r.tol_gpu_devices + 1e-6,
                    "{engine} {billed_hour}:00 {}: {have}, truth {} ± {}",
                    r.namespace,
                    r.gpu_devices,
                    r.tol_gpu_devices
                );
            }
        }
    }
}

/// A cluster billed by its devices whose store holds no dcgm-exporter series at all: refused
/// (exit 4) naming dcgm-exporter, its selector and the requests source, not the reference
/// namespaces or cAdvisor.
#[test]
fn no_dcgm_exporter_at_all_is_refused_naming_it_and_the_way_out() {
    let p = common::standard();
    let out = dry_run(p, &["--gpu-source", "devices"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    for says in [
        "no DCGM_FI_DEV_FB_USED series of any device",
        "dcgm-exporter",
        "--dcgm-exporter-selector",
        "--gpu-source requests",
    ] {
        assert!(out.stderr.contains(says), "{says} not in {}", out.stderr);
    }
    assert!(!out.stderr.contains("cAdvisor"), "{}", out.stderr);
}

/// A device whose UUID reaches the store only as a lower-case `uuid` label (a relabelling that
/// lower-cases names): the raw read of the devices that changed cannot name it by `UUID`, so
/// such an hour is read raw as a whole; every namespace still gets its truth, on both engines.
#[test]
fn a_lower_case_uuid_label_is_billed_the_truth() {
    let opts = Options {
        dcgm_lowercase_uuid: true,
        ..fleet(17, true)
    };
    for (engine, p) in both_engines("gpu-lowercase-uuid", &opts) {
        let got = billed(&dry_run(&p, DEVICES_BY_MODEL));
        check_devices(engine, &p, &got);
    }
}
