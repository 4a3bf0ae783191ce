//! dcgm-exporter's series as released versions write them, from output published in public
//! threads (`tests/fixtures/dcgm/*.om`, each citing its version and source): 2.x with
//! `Hostname`, 3.x with `pci_bus_id` and `DCGM_FI_DRIVER_VERSION`, 4.x with `hostname`, MIG
//! instances of H100 and A30, the `vgpu` label of GPU sharing, `--use-old-namespace`, and a DRA
//! allocation. Each fixture is one scrape; the test repeats it every 15 s for three hours
//! beside a small synthetic cluster, as Prometheus stores a target it scrapes with and without
//! `honor_labels` (the pod's labels then renamed `exported_*`, the target's own
//! `namespace`/`pod` added), on Prometheus and VictoriaMetrics. Every hour, each namespace the
//! fixture names is billed the GPU-hours it states, under `gpu` and under its model's key, and
//! no other namespace (the exporter's own least of all) is billed a GPU.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Outcome, TestPrometheus, bin, rfc3339, run};
use consumption_metrics_synth::scenario::Options;
use serde_json::Value;

const CLUSTER: &str = "synth-01";
const JOB: &str = "nvidia-dcgm-exporter";
const INSTANCE: &str = "10.129.7.21:9400";
/// The exporter's own pod, which a ServiceMonitor gives every series of its target.
const TARGET: &str =
    r#"namespace="gpu-operator",pod="nvidia-dcgm-exporter-fx7q2",container="nvidia-dcgm-exporter""#;

/// One fixture: the flags it needs, what it bills (namespace, GPU-hours per hour, model), and
/// its series (labels as the exporter writes them, value).
struct Fixture {
    flags: Vec<String>,
    expect: Vec<(String, f64, String)>,
    series: Vec<(String, String)>,
}

fn parse(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap();
    let mut fixture = Fixture {
        flags: Vec::new(),
        expect: Vec::new(),
        series: Vec::new(),
    };
    for line in text.lines() {
        if let Some(flags) = line.strip_prefix("# flags: ") {
            fixture
                .flags
                .extend(flags.split_whitespace().map(str::to_string));
        } else if let Some(expect) = line.strip_prefix("# expect: ") {
            let mut parts = expect.splitn(3, ' ');
            let (ns, gpus, model) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            fixture
                .expect
                .push((ns.into(), gpus.parse().unwrap(), model.into()));
        } else if let Some(rest) = line.strip_prefix("DCGM_FI_DEV_FB_USED{") {
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            fixture.series.push((labels.into(), value.into()));
        }
    }
    assert!(
        !fixture.expect.is_empty() && !fixture.series.is_empty(),
        "{}: an expectation and a series",
        path.display()
    );
    fixture
}

/// The labels Prometheus stores for a series the exporter wrote as `labels`: the target's
/// `job` and `instance`, and with `honor_labels: false` the target's own `namespace`, `pod` and
/// `container`, the exporter's renamed `exported_*` (Prometheus configuration, `honor_labels`).
fn stored(labels: &str, honor_labels: bool) -> String {
    let target = format!(r#"job="{JOB}",instance="{INSTANCE}""#);
    if honor_labels {
        return format!("{target},{labels}");
    }
    let renamed: Vec<String> = labels
        .split("\",")
        .map(|pair| {
            let pair = pair.trim_end_matches('"');
            match pair.split_once('=') {
                Some((k @ ("namespace" | "pod" | "container"), v)) => format!("exported_{k}={v}\""),
                _ => format!("{pair}\""),
            }
        })
        .collect();
    format!("{target},{TARGET},{}", renamed.join(","))
}

/// A small cluster with the fixture's series every 15 s and its target's `up`, served by
/// Prometheus and VictoriaMetrics.
fn stores(
    name: &str,
    fixture: &Fixture,
    honor_labels: bool,
) -> Vec<(&'static str, TestPrometheus)> {
    let opts = Options {
        hours: 3,
        random_namespaces: 2,
        only_random: true,
        seed: 17,
        ..Options::default()
    };
    let mut out = Vec::new();
    for engine in ["prometheus", "victoria-metrics"] {
        let dir = common::test_dir(&format!("dcgm-{name}-{honor_labels}-{engine}"));
        let dataset = consumption_metrics_synth::write_dataset(&opts, &dir.join("data")).unwrap();
        let cluster = std::fs::read(&dataset.openmetrics).unwrap();
        let mut devices = String::from("# TYPE DCGM_FI_DEV_FB_USED gauge\n");
        let mut up = String::from("# TYPE up gauge\n");
        let mut t = opts.start + 4;
        while t < dataset.data_end {
            for (labels, value) in &fixture.series {
                let labels = stored(labels, honor_labels);
                devices.push_str(&format!("DCGM_FI_DEV_FB_USED{{{labels}}} {value} {t}\n"));
            }
            up.push_str(&format!(
                "up{{job=\"{JOB}\",instance=\"{INSTANCE}\",{TARGET}}} 1 {t}\n"
            ));
            t += 15;
        }
        let mut merged = Vec::new();
        consumption_metrics_synth::openmetrics::merge(
            &[cluster, format!("{devices}{up}").into_bytes()],
            &mut merged,
        )
        .unwrap();
        std::fs::write(&dataset.openmetrics, merged).unwrap();
        out.push((
            engine,
            if engine == "prometheus" {
                common::serve_prometheus(dir, dataset)
            } else {
                common::serve_victoria_metrics(dir, dataset)
            },
        ));
    }
    out
}

fn dry_run(p: &TestPrometheus, extra: &[String]) -> Outcome {
    run(bin()
        .args(["--prometheus-url", &p.url, "--cluster-name", CLUSTER])
        .args([
            "--dry-run",
            "--cpu-basis",
            "request",
            "--gpu-source",
            "devices",
        ])
        .args(["--since", &rfc3339(p.dataset.first_truth_hour)])
        .args(["--until", &rfc3339(p.dataset.data_end)])
        .args(["--now", "2026-11-02T00:00:00Z"])
        .args(extra))
}

#[test]
fn published_dcgm_exporter_output_is_billed_as_it_states() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dcgm");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "om"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 6, "{paths:?}");
    let mut failures = Vec::new();
    for path in &paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let fixture = parse(path);
        // Every model the fixture bills, as a key `m<i>`.
        let mut models: BTreeMap<String, String> = BTreeMap::new();
        for (_, _, model) in &fixture.expect {
            let n = models.len();
            models.entry(model.clone()).or_insert(format!("m{n}"));
        }
        let mut flags = fixture.flags.clone();
        for (model, key) in &models {
            flags.extend(["--gpu-model".to_string(), format!("{model}={key}")]);
        }
        for honor_labels in [true, false] {
            for (engine, p) in stores(&name, &fixture, honor_labels) {
                let what = format!("{name}, {engine}, honor_labels {honor_labels}");
                let out = dry_run(&p, &flags);
                if out.code != 0 {
                    failures.push(format!("{what}: exit {}: {}", out.code, out.stderr));
                    continue;
                }
                let messages: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
                let billed = common::by_namespace_hour(&messages, CLUSTER);
                let hours = (p.dataset.data_end - p.dataset.first_truth_hour) / 3600;
                for h in 0..hours {
                    let hour = p.dataset.first_truth_hour + h * 3600;
                    let mut gpus: BTreeMap<&str, f64> = billed
                        .iter()
                        .filter(|((t, _), _)| *t == hour)
                        .map(|((_, ns), c)| (ns.as_str(), c["gpu"].as_f64().unwrap_or(0.0)))
                        .filter(|(_, g)| *g > 0.0)
                        .collect();
                    for (ns, want, model) in &fixture.expect {
                        let c = billed.get(&(hour, ns.clone()));
                        let have = c.and_then(|c| c["gpu"].as_f64()).unwrap_or(f64::NAN);
                        let key = format!("gpu_{}", models[model]);
                        let by_model = c.and_then(|c| c[&key].as_f64()).unwrap_or(f64::NAN);
                        if (have - want).abs() > 1e-6 || (by_model - want).abs() > 1e-6 {
                            failures.push(format!(
                                "{what}, {}: {ns} billed gpu {have}, {key} {by_model}; the \
                                 fixture states {want} of {model}",
                                rfc3339(hour)
                            ));
                        }
                        gpus.remove(ns.as_str());
                    }
                    if !gpus.is_empty() {
                        failures.push(format!(
                            "{what}, {}: namespaces the fixture does not name billed GPUs: \
                             {gpus:?}",
                            rfc3339(hour)
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
