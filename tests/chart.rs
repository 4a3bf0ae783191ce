//! The Helm chart (`charts/consumption-metrics/`), proved offline with helm-python-sdk (Helm's
//! own Go SDK, no helm binary, no network): it lints clean with each overlay's values, renders
//! the very objects `kubectl kustomize` renders for that overlay, and its values schema refuses
//! what the binary refuses at start, case by case, before anything reaches a cluster.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde_json::Value;

const OVERLAYS: [&str; 4] = ["dev", "np", "stage", "prd"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/consumption-metrics")
}

fn values_of(overlay: &str) -> PathBuf {
    chart().join(format!("ci/{overlay}-values.yaml"))
}

/// The chart rendered into `namespace` with `values` files over its own; `Err` is Helm's
/// refusal.
fn helm_render(namespace: &str, values: &[&Path]) -> Result<Vec<Value>, String> {
    let out = common::chart_py()
        .arg("render")
        .arg(chart())
        .arg(namespace)
        .args(values)
        .output()
        .expect("running scripts/chart.py");
    if out.status.success() {
        Ok(common::yaml_documents(&out.stdout))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The settings ConfigMap's generated name (kustomize adds a hash of its content, the chart
/// keeps one name: a CronJob's Jobs read it fresh at every start either way).
const SETTINGS: &str = "consumption-metrics-settings";

/// Objects by kind and name, with what may differ by design made equal: the settings'
/// hash suffix, and Helm's own annotations (`helm.sh/resource-policy: keep` on the checkpoint,
/// which `helm uninstall` would otherwise delete).
fn by_identity(objects: Vec<Value>) -> BTreeMap<(String, String), Value> {
    fn settle(v: &mut Value) {
        match v {
            Value::String(s) if s.starts_with(SETTINGS) => *s = SETTINGS.to_string(),
            Value::Object(m) => {
                if let Some(Value::Object(a)) = m.get_mut("annotations") {
                    a.retain(|k, _| !k.starts_with("helm.sh/"));
                    if a.is_empty() {
                        m.remove("annotations");
                    }
                }
                m.values_mut().for_each(settle);
            }
            Value::Array(a) => a.iter_mut().for_each(settle),
            _ => {}
        }
    }
    objects
        .into_iter()
        .map(|mut v| {
            settle(&mut v);
            let kind = v["kind"].as_str().unwrap_or_default().to_string();
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            ((kind, name), v)
        })
        .collect()
}

#[test]
fn the_chart_lints_clean_and_renders_what_each_overlay_renders() {
    for overlay in OVERLAYS {
        let lint = common::chart_py()
            .arg("lint")
            .arg(chart())
            .arg(values_of(overlay))
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "{overlay}: helm lint: {}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
        let namespace = format!("billing-{overlay}");
        let helm = by_identity(
            helm_render(&namespace, &[&values_of(overlay)])
                .unwrap_or_else(|e| panic!("{overlay}: {e}")),
        );
        let kustomized = by_identity(common::kustomize(overlay));
        let names = |m: &BTreeMap<(String, String), Value>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&helm), names(&kustomized), "{overlay}: the objects");
        for (id, want) in &kustomized {
            assert_eq!(
                &helm[id],
                want,
                "{overlay}: {id:?} differs\nchart:\n{}\nkustomize:\n{}",
                serde_yaml::to_string(&helm[id]).unwrap(),
                serde_yaml::to_string(want).unwrap()
            );
        }
    }
}

/// `--check-config` with `env`: the binary's own verdict on a configuration.
fn binary_accepts(env: &BTreeMap<String, String>) -> (bool, String) {
    let out = common::run(
        common::bin()
            .env_remove("LOG_FORMAT")
            .envs(env)
            .arg("--check-config"),
    );
    (out.code == 0, out.stderr)
}

/// Each case: values (YAML, over the prd overlay's) the schema must refuse, the field its
/// refusal names, and the same setting as the CronJob's environment, which the binary must
/// refuse too (exit 2). The schema is not looser than the binary on any of them.
const REFUSED: &[(&str, &str, &str, &str)] = &[
    ("clusterName: \"\"", "/clusterName", "CLUSTER_NAME", ""),
    (
        "clusterName: team/a",
        "/clusterName",
        "CLUSTER_NAME",
        "team/a",
    ),
    (
        "clusterName: -edge",
        "/clusterName",
        "CLUSTER_NAME",
        "-edge",
    ),
    ("kafka: {topic: \" \"}", "/kafka/topic", "KAFKA_TOPIC", " "),
    (
        "kafka: {brokers: \"\"}",
        "/kafka/brokers",
        "KAFKA_BROKERS",
        "",
    ),
    (
        "prometheusUrl: \"\"",
        "/prometheusUrl",
        "PROMETHEUS_URL",
        "",
    ),
    (
        "prometheusUrl: ftp://prometheus:9090",
        "/prometheusUrl",
        "PROMETHEUS_URL",
        "ftp://prometheus:9090",
    ),
    (
        "storageTiers: gold=platinum",
        "/storageTiers",
        "STORAGE_TIERS",
        "gold=platinum",
    ),
    (
        "storageTiers: gold",
        "/storageTiers",
        "STORAGE_TIERS",
        "gold",
    ),
    (
        "storageTiers: =basic",
        "/storageTiers",
        "STORAGE_TIERS",
        "=basic",
    ),
    (
        "settings: {CPU_BASIS: cheapest}",
        "CPU_BASIS",
        "CPU_BASIS",
        "cheapest",
    ),
    (
        "settings: {MAX_HOURS_PER_RUN: \"0\"}",
        "MAX_HOURS_PER_RUN",
        "MAX_HOURS_PER_RUN",
        "0",
    ),
    (
        "settings: {MAX_HOURS_PER_RUN: 9000}",
        "MAX_HOURS_PER_RUN",
        "MAX_HOURS_PER_RUN",
        "9000",
    ),
    (
        "settings: {SETTLE_DELAY: soon}",
        "SETTLE_DELAY",
        "SETTLE_DELAY",
        "soon",
    ),
    (
        "settings: {EXCLUDE_NAMESPACES: \" \"}",
        "EXCLUDE_NAMESPACES",
        "EXCLUDE_NAMESPACES",
        " ",
    ),
    (
        "settings: {LOG_FORMAT: xml}",
        "LOG_FORMAT",
        "LOG_FORMAT",
        "xml",
    ),
];

#[test]
fn the_values_schema_refuses_what_the_binary_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let prd = values_of("prd");
    let (base, _) =
        common::container_env(&helm_render("billing-prd", &[&prd]).unwrap(), "billing-prd");
    assert!(binary_accepts(&base).0, "the prd values are accepted");
    for (i, (values, field, var, value)) in REFUSED.iter().enumerate() {
        let file = dir.path().join(format!("case-{i}.yaml"));
        std::fs::write(&file, values).unwrap();
        let refusal = helm_render("billing-prd", &[&prd, &file])
            .expect_err(&format!("the schema accepts {values}"));
        assert!(
            refusal.contains(field),
            "{values}: the refusal does not name {field}:\n{refusal}"
        );
        let mut env = base.clone();
        env.insert(var.to_string(), value.to_string());
        let (accepted, stderr) = binary_accepts(&env);
        assert!(!accepted, "the binary accepts {var}={value:?}: {stderr}");
    }
    // A setting's name mistyped would be ignored by the binary (it reads only the names it
    // knows): the schema refuses it by name.
    let file = dir.path().join("typo.yaml");
    std::fs::write(&file, "settings: {CPU_BASSIS: max}").unwrap();
    let refusal = helm_render("billing-prd", &[&prd, &file]).expect_err("a mistyped setting");
    assert!(refusal.contains("CPU_BASSIS"), "{refusal}");
}

/// The schema's list of settings is the binary's environment variables: none missing, none
/// unknown, bar those the chart sets itself or gives a value of its own.
#[test]
fn the_values_schema_knows_every_setting() {
    let schema: Value =
        serde_json::from_slice(&std::fs::read(chart().join("values.schema.json")).unwrap())
            .unwrap();
    let listed: BTreeSet<String> = schema["properties"]["settings"]["propertyNames"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let binary: BTreeSet<String> = consumption_metrics::cli::Args::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    // Set by the chart's CronJob (the checkpoint, the token and CA, the Kafka client files),
    // or by a value of their own (clusterName, kafka.topic, …).
    let by_chart: BTreeSet<String> = [
        "CHECKPOINT_CONFIGMAP",
        "CHECKPOINT_NAMESPACE",
        "CHECKPOINT_FILE",
        "PROMETHEUS_BEARER_TOKEN_FILE",
        "PROMETHEUS_CA",
        "KAFKA_CA",
        "KAFKA_CERT",
        "KAFKA_KEY",
        "CLUSTER_NAME",
        "SERVICE_LOCATION",
        "PROMETHEUS_URL",
        "KAFKA_BROKERS",
        "KAFKA_TOPIC",
        "STORAGE_TIERS",
        "PUSHGATEWAY_URL",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let expected: BTreeSet<String> = binary.difference(&by_chart).cloned().collect();
    assert_eq!(
        listed, expected,
        "values.schema.json settings vs the binary's variables"
    );
}

/// The alert rules the chart ships are kustomize's, text for text (the render comparison
/// proves the objects equal; this names the file to edit when they are not).
#[test]
fn the_charts_alert_rules_are_the_components() {
    let chart_rules = std::fs::read_to_string(chart().join("files/prometheus-rules.yaml")).unwrap();
    let component =
        std::fs::read_to_string(root().join("kustomize/components/alerts/prometheusrule.yaml"))
            .unwrap();
    let spec = |text: &str| -> Value { serde_yaml::from_str::<Value>(text).unwrap() };
    assert_eq!(
        spec(&chart_rules),
        spec(&component)["spec"],
        "charts/consumption-metrics/files/prometheus-rules.yaml must equal the spec of \
         kustomize/components/alerts/prometheusrule.yaml"
    );
}
