//! What ships is what was reviewed: CI actions pinned to commits with read-only permissions,
//! credentials bound only where they are used, the pushed digest signed with the SBOM attached,
//! a cluster policy that verifies both, and an SBOM that lists every crate the release binary
//! links. (The dependency policy itself, deny.toml, is checked by `cargo deny` in .ci/run.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(text: &str, what: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `owner/repo[/path]@<40 hex> # v<release>`: a commit cannot move, and the comment says which
/// release it is for whoever updates it.
fn pinned(line: &str) -> bool {
    let Some((uses, comment)) = line.trim().trim_start_matches("- ").split_once(" # v") else {
        return false;
    };
    let Some((action, commit)) = uses.trim_start_matches("uses:").trim().split_once('@') else {
        return false;
    };
    action.split('/').count() >= 2
        && commit.len() == 40
        && commit
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && comment.starts_with(|c: char| c.is_ascii_digit())
}

#[test]
fn the_pin_check_itself() {
    assert!(pinned(
        "      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
    ));
    for unpinned in [
        "- uses: actions/checkout@v4",
        "- uses: actions/checkout@main # v4",
        "- uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
        "- uses: actions/checkout@11BD71901BBE5B1630CEEA73D27597364C9AF683 # v4.2.2",
        "- uses: checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
    ] {
        assert!(!pinned(unpinned), "{unpinned}");
    }
}

/// Every workflow: each `uses:` pinned to a full commit, `permissions:` read-only at the top and
/// never widened by a job, and checkouts that do not leave the token in `.git/config`.
#[test]
fn ci_actions_are_pinned_and_least_privilege() {
    let dir = root().join(".github/workflows");
    let mut workflows = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            continue;
        }
        workflows += 1;
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| {
            l.trim_start().starts_with("- uses:") || l.trim_start().starts_with("uses:")
        }) {
            assert!(
                pinned(line),
                "{name}: `{}` is not pinned to a full commit id with `# v<release>`",
                line.trim()
            );
        }
        let w = yaml(&text, &name);
        assert_eq!(
            w["permissions"],
            yaml("contents: read", "expected"),
            "{name}: top-level permissions must be `contents: read`"
        );
        for (job, spec) in w["jobs"].as_object().unwrap() {
            if let Some(p) = spec.get("permissions") {
                let widened = p
                    .as_object()
                    .is_none_or(|m| m.values().any(|v| v != "read" && v != "none"));
                assert!(!widened, "{name}: job {job} widens permissions: {p}");
            }
            for step in spec["steps"].as_array().unwrap() {
                if step["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("actions/checkout@"))
                {
                    assert_eq!(
                        step["with"]["persist-credentials"],
                        Value::Bool(false),
                        "{name}: job {job} checks out with the token persisted"
                    );
                }
            }
        }
    }
    assert!(workflows > 0, "no workflow found in {}", dir.display());
}

/// The Jenkinsfile binds each credential inside the step that uses it, pushes every platform,
/// signs the digest (not a tag) and attaches the SBOM to it.
#[test]
fn the_pipeline_scopes_credentials_and_signs_the_digest() {
    let j = read("Jenkinsfile");
    let environment = j
        .split("environment {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("an environment block");
    assert!(
        !environment.contains("credentials("),
        "pipeline-wide credentials reach every stage: {environment}"
    );
    for (stage, binding) in [
        ("Push", "usernamePassword(credentialsId: 'registry'"),
        ("Chart", "usernamePassword(credentialsId: 'registry'"),
        ("Sign", "file(credentialsId: 'cosign-key'"),
        ("Tag", "sshagent(credentials: ['git-push'])"),
    ] {
        let body = j
            .split(&format!("stage('{stage}')"))
            .nth(1)
            .unwrap_or_else(|| panic!("no stage {stage}"))
            .split("stage('")
            .next()
            .unwrap();
        assert!(body.contains(binding), "stage {stage} binds {binding}");
    }
    assert_eq!(
        j.matches("credentialsId: 'cosign-key'").count(),
        1,
        "the signing key is bound once, in Sign"
    );
    for needed in [
        "--platform \"$PLATFORMS\"",
        "linux/amd64,linux/arm64",
        "cosign sign --yes --key \"$COSIGN_KEY\" \"$ref\"",
        "ref=\"$REPO@$(cat target/image-digest)\"",
        "cosign attest --yes --key \"$COSIGN_KEY\" --type cyclonedx",
        // The Helm chart, pushed beside the image and signed by its digest.
        "scripts/chart.py package",
        "cosign sign --yes --key \"$COSIGN_KEY\" \"$chart_ref\"",
        "--predicate target/sbom/consumption-metrics.cdx.json",
        "bash scripts/sbom.sh target/sbom",
        "cargo deny --locked check",
    ] {
        assert!(j.contains(needed), "the Jenkinsfile lacks {needed:?}");
    }
}

/// The example policy verifies the image the overlays deploy, by signature and SBOM.
#[test]
fn the_kyverno_example_verifies_signature_and_sbom() {
    let policy = yaml(
        &read("deploy/kyverno/verify-image.yaml"),
        "verify-image.yaml",
    );
    assert_eq!(policy["kind"], "ClusterPolicy");
    assert_eq!(policy["spec"]["validationFailureAction"], "Enforce");
    let verify = &policy["spec"]["rules"][0]["verifyImages"][0];
    assert_eq!(verify["mutateDigest"], true);
    assert_eq!(verify["required"], true);
    assert_eq!(
        verify["attestations"][0]["predicateType"],
        "https://cyclonedx.org/bom"
    );
    let reference = verify["imageReferences"][0].as_str().unwrap();
    let prefix = reference.trim_end_matches('*');
    for overlay in ["dev", "np", "stage", "prd"] {
        let k = yaml(
            &read(&format!("kustomize/overlays/{overlay}/kustomization.yaml")),
            overlay,
        );
        // The overlay's image: renamed by it, or the base's name it retags.
        let entry = &k["images"][0];
        let image = entry["newName"]
            .as_str()
            .or(entry["name"].as_str())
            .unwrap();
        assert!(
            image.starts_with(prefix),
            "{overlay} deploys {image}, which the policy ({reference}) does not check"
        );
    }
}

/// `name@version` of every package `cargo tree` prints for the release binary on linux.
fn linked_crates() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "tree",
            "--locked",
            "-e",
            "normal",
            "-p",
            "consumption-metrics",
        ])
        .args(["--target", "x86_64-unknown-linux-gnu", "--prefix", "none"])
        .args(["--format", "{p}"])
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (name, version) = (words.next()?, words.next()?.strip_prefix('v')?);
            Some(format!("{name}@{version}"))
        })
        .filter(|c| !c.starts_with("consumption-metrics@"))
        .collect()
}

/// The SBOM that ships with the image lists every crate the binary links, each with a hash, a
/// license and a purl, and names the binary and its version.
#[test]
fn the_sbom_lists_every_crate_the_binary_links() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root().join("scripts/sbom.sh"))
        .arg(dir.path())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "scripts/sbom.sh failed (bash scripts/install-deps.sh --supply-chain installs \
         cargo-cyclonedx): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path: &Path = &dir.path().join("consumption-metrics.cdx.json");
    let sbom: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["name"], "consumption-metrics");
    assert_eq!(
        sbom["metadata"]["component"]["version"],
        env!("CARGO_PKG_VERSION")
    );
    let components = sbom["components"].as_array().unwrap();
    let listed: BTreeSet<String> = components
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect();
    let linked = linked_crates();
    assert!(linked.len() > 100, "{linked:?}");
    let missing: Vec<&String> = linked.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "crates linked but not in the SBOM: {missing:?}"
    );
    for c in components {
        let name = c["name"].as_str().unwrap();
        assert!(
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:cargo/")),
            "{name}: {c}"
        );
        assert_eq!(c["hashes"][0]["alg"], "SHA-256", "{name}");
        assert!(
            c["licenses"].as_array().is_some_and(|l| !l.is_empty()),
            "{name}"
        );
    }
    // Dated by the commit, not the clock: the same commit gives the same SBOM.
    assert!(sbom["metadata"]["timestamp"].is_string());
}
