//! The deployment, proved offline: every overlay renders with `kubectl kustomize`, every object
//! parses into its Kubernetes type without unknown fields, the security and RBAC policies hold,
//! and the CronJob's rendered settings are accepted by this binary's own configuration parsing.

mod common;

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde_json::Value;

const OVERLAYS: [&str; 4] = ["dev", "np", "stage", "prd"];
const CHECKPOINT: &str = "consumption-metrics-checkpoint";

fn render(overlay: &str) -> Vec<Value> {
    common::kustomize(overlay)
}

/// Drop nulls and empty objects/arrays, which the typed round trip may omit.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalize(v)))
                .filter(|(_, v)| !v.is_null())
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// Parse into `T` and back: anything `T` does not know is lost, and the comparison fails.
fn strict<T: DeserializeOwned + serde::Serialize>(v: &Value) -> T {
    let typed: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", v["metadata"]["name"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        normalize(&back),
        normalize(v),
        "{} {} has fields its type does not know",
        v["kind"],
        v["metadata"]["name"]
    );
    typed
}

#[derive(Default)]
struct Rendered {
    cronjob: Option<CronJob>,
    roles: Vec<Role>,
    bindings: Vec<RoleBinding>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    configmaps: Vec<ConfigMap>,
    policies: Vec<NetworkPolicy>,
    accounts: Vec<ServiceAccount>,
    rules: Vec<Value>,
}

fn parse(overlay: &str) -> Rendered {
    let mut r = Rendered::default();
    for v in render(overlay) {
        match v["kind"].as_str().unwrap_or_default() {
            "CronJob" => {
                assert!(r.cronjob.is_none(), "two CronJobs");
                r.cronjob = Some(strict(&v));
            }
            "Role" => r.roles.push(strict(&v)),
            "RoleBinding" => r.bindings.push(strict(&v)),
            "ClusterRoleBinding" => r.cluster_bindings.push(strict(&v)),
            "ConfigMap" => r.configmaps.push(strict(&v)),
            "NetworkPolicy" => r.policies.push(strict(&v)),
            "ServiceAccount" => r.accounts.push(strict(&v)),
            // Not a Kubernetes type: checked by the_alerts_fire_when_they_should_and_only_then.
            "PrometheusRule" => r.rules.push(v.clone()),
            other => panic!("{overlay}: unexpected kind {other}"),
        }
    }
    r
}

fn namespace_of(overlay: &str) -> String {
    format!("billing-{overlay}")
}

#[test]
fn every_overlay_renders_strictly_typed_objects() {
    for overlay in OVERLAYS {
        let r = parse(overlay);
        assert!(r.cronjob.is_some(), "{overlay}: no CronJob");
        assert_eq!(r.accounts.len(), 1, "{overlay}");
        assert_eq!(r.policies.len(), 1, "{overlay}");
        // Alerts where the overlay includes them, in the overlay's namespace, with the
        // Pushgateway they need configured.
        let alerts = matches!(overlay, "stage" | "prd");
        assert_eq!(
            r.rules.len(),
            usize::from(alerts),
            "{overlay}: PrometheusRule"
        );
        for rule in &r.rules {
            assert_eq!(
                rule["metadata"]["namespace"],
                namespace_of(overlay).as_str()
            );
        }
        let settings = r
            .configmaps
            .iter()
            .find(|c| {
                c.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("consumption-metrics-settings"))
            })
            .and_then(|c| c.data.clone())
            .unwrap_or_default();
        assert_eq!(
            settings.contains_key("PUSHGATEWAY_URL"),
            alerts,
            "{overlay}"
        );
        for cm in &r.configmaps {
            assert_eq!(
                cm.metadata.namespace.as_deref(),
                Some(namespace_of(overlay).as_str())
            );
        }
    }
}

#[test]
fn the_cronjob_is_safe_to_run_hourly() {
    for overlay in OVERLAYS {
        let cj = parse(overlay).cronjob.unwrap();
        let spec = cj.spec.unwrap();
        assert_eq!(
            spec.concurrency_policy.as_deref(),
            Some("Forbid"),
            "{overlay}"
        );
        assert_eq!(
            spec.schedule, "15 * * * *",
            "{overlay}: after the settle delay"
        );
        assert!(spec.starting_deadline_seconds.is_some(), "{overlay}");
        assert!(
            spec.successful_jobs_history_limit.is_some()
                && spec.failed_jobs_history_limit.is_some()
        );
        let job = spec.job_template.spec.unwrap();
        assert!(job.backoff_limit.is_some(), "{overlay}");
        let deadline = job.active_deadline_seconds.expect("activeDeadlineSeconds");
        assert!(
            deadline < 3600,
            "{overlay}: a run must end before the next one"
        );
        let pod = job.template.spec.unwrap();
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true), "{overlay}");
        assert_eq!(
            psc.seccomp_profile.unwrap().type_,
            "RuntimeDefault",
            "{overlay}"
        );
        assert_eq!(pod.containers.len(), 1);
        let c = &pod.containers[0];
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{overlay}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{overlay}");
        assert_eq!(
            sc.capabilities.unwrap().drop,
            Some(vec!["ALL".to_string()]),
            "{overlay}"
        );
        let resources = c.resources.clone().unwrap();
        assert!(resources.requests.is_some(), "{overlay}");
        assert!(
            resources.limits.unwrap().contains_key("memory"),
            "{overlay}"
        );
        let image = c.image.clone().unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
        assert!(
            !tag.is_empty() && tag != "latest",
            "{overlay}: image {image} is not pinned"
        );
        // The Kafka client files come from a mounted Secret, read-only.
        let mount = c
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .find(|m| m.name == "kafka-client")
            .unwrap();
        assert_eq!(mount.read_only, Some(true));
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "kafka-client")
            .unwrap();
        assert!(
            volume.secret.is_some(),
            "{overlay}: Kafka client files must come from a Secret"
        );
        for var in ["KAFKA_CA", "KAFKA_CERT", "KAFKA_KEY"] {
            let value = c
                .env
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.name == var)
                .and_then(|e| e.value.clone())
                .unwrap();
            assert!(
                value.starts_with(&mount.mount_path),
                "{overlay}: {var}={value}"
            );
        }
    }
}

#[test]
fn rbac_is_least_privilege() {
    for overlay in OVERLAYS {
        let r = parse(overlay);
        assert_eq!(r.roles.len(), 1, "{overlay}: one Role");
        let rules = r.roles[0].rules.clone().unwrap();
        assert_eq!(rules.len(), 1, "{overlay}");
        let rule = &rules[0];
        assert_eq!(rule.api_groups, Some(vec![String::new()]));
        assert_eq!(rule.resources, Some(vec!["configmaps".to_string()]));
        assert_eq!(
            rule.resource_names,
            Some(vec![CHECKPOINT.to_string()]),
            "{overlay}: by name only"
        );
        let mut verbs = rule.verbs.clone();
        verbs.sort();
        // Exactly what src/checkpoint/configmap.rs calls: GET and PUT (update).
        assert_eq!(verbs, vec!["get", "update"], "{overlay}");
        // The binding names that Role and the job's service account.
        let binding = &r.bindings[0];
        assert_eq!(
            binding.role_ref.name,
            r.roles[0].metadata.name.clone().unwrap()
        );
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(subject.name, "consumption-metrics");
        // The cluster-wide binding only grants reading metrics, to this namespace's account.
        for crb in &r.cluster_bindings {
            assert_eq!(crb.role_ref.name, "cluster-monitoring-view", "{overlay}");
            let s = &crb.subjects.as_ref().unwrap()[0];
            assert_eq!(
                s.namespace.as_deref(),
                Some(namespace_of(overlay).as_str()),
                "{overlay}"
            );
        }
        // The checkpoint ConfigMap is shipped without the key the job writes, so a sync can
        // never reset it, and is never pruned by Argo CD.
        let cp = r
            .configmaps
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(CHECKPOINT))
            .expect("checkpoint ConfigMap");
        assert!(
            cp.data
                .as_ref()
                .is_none_or(|d| !d.contains_key("lastPublishedTime")),
            "{overlay}"
        );
        let annotations = cp.metadata.annotations.clone().unwrap_or_default();
        assert!(annotations["argocd.argoproj.io/sync-options"].contains("Prune=false"));
    }
}

#[test]
fn the_network_policy_allows_only_what_the_job_needs() {
    for overlay in OVERLAYS {
        let np = parse(overlay).policies.remove(0).spec.unwrap();
        assert_eq!(
            np.policy_types,
            Some(vec!["Ingress".to_string(), "Egress".to_string()])
        );
        assert!(
            np.ingress.unwrap_or_default().is_empty(),
            "{overlay}: no ingress"
        );
        let egress = np.egress.unwrap();
        let kafka = &egress[3];
        let cidr = &kafka.to.as_ref().unwrap()[0]
            .ip_block
            .as_ref()
            .unwrap()
            .cidr;
        assert_ne!(
            cidr, "10.0.0.0/8",
            "{overlay}: the overlay must narrow the Kafka CIDR"
        );
    }
}

/// A renamed flag, a missing setting or a bad value in any overlay fails here, before it
/// reaches a cluster.
#[test]
fn the_binary_accepts_every_overlays_settings() {
    for overlay in OVERLAYS {
        let ns = namespace_of(overlay);
        let (env, args) = common::container_env(&render(overlay), &ns);
        let mut cmd = common::bin();
        cmd.env_remove("LOG_FORMAT")
            .envs(&env)
            .args(&args)
            .arg("--check-config");
        let out = common::run(&mut cmd);
        assert_eq!(out.code, 0, "{overlay}: {}", out.stderr);
        let topic = &env["KAFKA_TOPIC"];
        for needle in [
            format!("publish to Kafka topic {topic}"),
            format!("checkpoint:  ConfigMap {ns}/{CHECKPOINT}"),
            format!("cluster:     {}", env["CLUSTER_NAME"]),
            "plan:        scheduled".to_string(),
        ] {
            assert!(
                out.stdout.contains(&needle),
                "{overlay}: {needle:?} not in\n{}",
                out.stdout
            );
        }
        assert_eq!(env["CHECKPOINT_CONFIGMAP"], CHECKPOINT);
    }
}

/// The Argo CD example ignores the checkpoint's data and points at an existing overlay.
#[test]
fn the_argocd_example_protects_the_checkpoint() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd/application.yaml"),
    )
    .unwrap();
    let app: Value = serde_yaml::from_str(&text).unwrap();
    let path = app["spec"]["source"]["path"].as_str().unwrap();
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(path)
            .join("kustomization.yaml")
            .exists()
    );
    let ignore = &app["spec"]["ignoreDifferences"][0];
    assert_eq!(ignore["name"], CHECKPOINT);
    assert_eq!(ignore["jsonPointers"][0], "/data");
    let options: Vec<&str> = app["spec"]["syncPolicy"]["syncOptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(options.contains(&"RespectIgnoreDifferences=true"));
}

/// One list of build packages: the image and the CI workflow install through
/// scripts/install-deps.sh, so neither can lack a header the tests had (the curl headers once
/// went missing from a copy).
#[test]
fn build_packages_come_from_one_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["Dockerfile", ".github/workflows/ci.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            !text.contains("apt-get install"),
            "{file} installs packages itself; call scripts/install-deps.sh instead"
        );
        assert!(
            text.contains("install-deps.sh --build-only"),
            "{file} does not install the build packages with scripts/install-deps.sh"
        );
    }
    let deps = std::fs::read_to_string(root.join("scripts/install-deps.sh")).unwrap();
    let list = deps
        .lines()
        .find(|l| l.starts_with("build_pkgs=("))
        .expect("the build package list in install-deps.sh");
    // librdkafka's rdkafka_conf.c includes <curl/curl.h> even when built without curl.
    for pkg in [
        "cmake",
        "libssl-dev",
        "zlib1g-dev",
        "libcurl4-openssl-dev",
        "pkg-config",
    ] {
        assert!(list.contains(pkg), "{pkg} missing from {list}");
    }
}

/// The alerts shipped in kustomize/components/alerts pass `promtool check rules` and their
/// unit tests (deploy/alerts/tests.yml): each alert fires and stays quiet where it should.
#[test]
fn the_alerts_fire_when_they_should_and_only_then() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rule: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("kustomize/components/alerts/prometheusrule.yaml"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        serde_yaml::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        root.join("deploy/alerts/tests.yml"),
        dir.path().join("tests.yml"),
    )
    .unwrap();
    for args in [
        ["check", "rules", "rules.yml"],
        ["test", "rules", "tests.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("promtool (Debian's prometheus package; scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert has a test that shows it firing.
    let tests = std::fs::read_to_string(root.join("deploy/alerts/tests.yml")).unwrap();
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let name = r["alert"].as_str().unwrap();
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "no test shows {name} firing"
        );
    }
}

/// What the Dockerfile copies from the build context is not excluded by .dockerignore (the
/// build-package script once was: `scripts/` was ignored while the image copied from it).
/// Docker's rules: a pattern excludes a path or any directory above it; the last matching
/// pattern wins, and `!` re-includes.
#[test]
fn the_dockerfile_copies_nothing_the_dockerignore_excludes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let rules: Vec<(bool, glob::Pattern)> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (include, p) = match l.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, l),
            };
            (
                include,
                glob::Pattern::new(p.trim_end_matches('/')).unwrap(),
            )
        })
        .collect();
    let excluded = |path: &str| {
        let mut out = false;
        for (include, pattern) in &rules {
            let mut prefix = String::new();
            let hit = path.split('/').any(|part| {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                pattern.matches(&prefix)
            });
            if hit {
                out = !include;
            }
        }
        out
    };
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let mut copied = 0;
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            let source = source.trim_start_matches("./").trim_end_matches('/');
            assert!(root.join(source).exists(), "COPY {source}: no such path");
            assert!(
                !excluded(source),
                "COPY {source} is excluded by .dockerignore"
            );
            copied += 1;
        }
    }
    assert!(copied >= 5, "{copied} sources");
    // The check itself: what must stay out of the context does.
    assert!(excluded("target/release/consumption-metrics"));
    assert!(excluded("scripts/demo.sh"));
    assert!(!excluded("scripts/install-deps.sh"));
}

/// Each overlay deploys the tag it names: an `images` entry that matches no image (the base
/// renames it) would silently leave the base's tag, and a roll-out would not roll out.
#[test]
fn every_overlay_deploys_the_tag_it_names() {
    for overlay in OVERLAYS {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("kustomize/overlays")
            .join(overlay)
            .join("kustomization.yaml");
        let k: Value = serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let tag = k["images"][0]["newTag"]
            .as_str()
            .expect("the overlay names a tag");
        let cronjob = render(overlay)
            .into_iter()
            .find(|o| o["kind"] == "CronJob")
            .unwrap();
        let image =
            cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string();
        assert!(
            image.ends_with(&format!(":{tag}")),
            "{overlay}: names {tag}, deploys {image}"
        );
    }
}
