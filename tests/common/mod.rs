//! Shared setup of the integration tests: a real Prometheus (Debian's package) on 127.0.0.1,
//! loaded with a generated synthetic cluster.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use consumption_metrics_synth::{Dataset, scenario::Options, truth::TruthRow, write_dataset};

pub mod kafka;

/// Seconds after which a test server stops by itself, whatever happens to the test: 900, or
/// `TEST_SERVER_LIFETIME_SECS` for longer runs (the soak).
fn server_lifetime_secs() -> String {
    std::env::var("TEST_SERVER_LIFETIME_SECS").unwrap_or_else(|_| "900".into())
}

/// A command that runs `program` as a test server which stops when the test process ends
/// (even if it is killed) or after [`server_lifetime_secs`], whichever comes first.
///
/// The server runs under a small shell that holds a pipe from the test process on its stdin:
/// when the test process exits, the pipe closes and the shell stops the server. Statics are
/// never dropped, so without this the servers shared by a test binary would outlive it.
/// Stop it early with [`stop`], which sends SIGTERM to `timeout`; `timeout` passes it on to its
/// whole process group.
pub fn server(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("timeout");
    c.arg(server_lifetime_secs())
        .args(["sh", "-c", r#""$@" & cat >/dev/null; kill $!; wait"#, "sh"])
        .arg(program)
        .stdin(Stdio::piped());
    c
}

/// Stop a child started with [`server`] and wait for it.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

pub struct TestPrometheus {
    pub url: String,
    pub dataset: Dataset,
    pub dir: PathBuf,
    child: Child,
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed; run `bash scripts/install-deps.sh` (or `bash scripts/test.sh`, \
         which does it) first"
    );
}

/// Generate the data set for `opts` under target/, load it with promtool and start Prometheus.
pub fn start_prometheus(name: &str, opts: &Options) -> TestPrometheus {
    let dir = test_dir(name);
    let dataset = write_dataset(opts, &dir.join("data")).expect("writing the synthetic cluster");
    serve_prometheus(dir, dataset)
}

/// An empty directory for one test server under target/.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a test directory under target/");
    dir
}

/// Load `dataset`'s OpenMetrics file with promtool and start Prometheus on it, in `dir`.
pub fn serve_prometheus(dir: PathBuf, dataset: Dataset) -> TestPrometheus {
    require("prometheus");
    require("promtool");
    // The one Prometheus start-up of the tests, the demo and the benchmark.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/prometheus.sh");
    let log = std::fs::File::create(dir.join("start.log")).unwrap();
    let mut child = server("bash")
        .arg(&script)
        .arg(&dataset.openmetrics)
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting scripts/prometheus.sh");
    // Loading the data with promtool comes first: seconds for the test clusters, minutes for
    // the soak's 2 GB (loaded in parts, one promtool per core: scripts/prometheus.sh), allowed
    // 150 s more per GB of text on top of 5 minutes.
    let size = std::fs::metadata(&dataset.openmetrics).map_or(0, |m| m.len());
    let deadline = Instant::now() + Duration::from_secs(300 + size * 150 / (1 << 30));
    let url = loop {
        if let Ok(url) = std::fs::read_to_string(dir.join("url")) {
            break url.trim().to_string();
        }
        let exited = child.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "Prometheus did not become ready ({exited:?}): {}; see {}",
            std::fs::read_to_string(dir.join("start.log")).unwrap_or_default(),
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    TestPrometheus {
        url,
        dataset,
        dir,
        child,
    }
}

/// Generate the data set for `opts` under target/, import it into a real VictoriaMetrics
/// (Debian's package; left-open range windows, another `resets`/`increase`), and start it.
/// The same options give the same data and truth as [`start_prometheus`].
pub fn start_victoria_metrics(name: &str, opts: &Options) -> TestPrometheus {
    let dir = test_dir(name);
    let dataset = write_dataset(opts, &dir.join("data")).expect("writing the synthetic cluster");
    serve_victoria_metrics(dir, dataset)
}

/// Several clusters in one store (each with its `external_labels`), in a real Prometheus:
/// the server, and each cluster's dataset (its truth) in the order given.
pub fn start_store_prometheus(name: &str, clusters: &[Options]) -> (TestPrometheus, Vec<Dataset>) {
    let dir = test_dir(name);
    let datasets = consumption_metrics_synth::write_store(clusters, &dir.join("data"))
        .expect("writing the synthetic clusters");
    (serve_prometheus(dir, datasets[0].clone()), datasets)
}

/// [`start_store_prometheus`] in a real VictoriaMetrics.
pub fn start_store_victoria_metrics(
    name: &str,
    clusters: &[Options],
) -> (TestPrometheus, Vec<Dataset>) {
    let dir = test_dir(name);
    let datasets = consumption_metrics_synth::write_store(clusters, &dir.join("data"))
        .expect("writing the synthetic clusters");
    (serve_victoria_metrics(dir, datasets[0].clone()), datasets)
}

/// Import the samples of the OpenMetrics file `openmetrics` at or after `from` (Unix seconds)
/// into the VictoriaMetrics at `url`, as late samples reach a central store through remote
/// write (its import API takes samples older than those it holds).
pub fn import_victoria_metrics(url: &str, dir: &Path, openmetrics: &Path, from: i64) {
    use std::io::{BufRead, BufWriter, Write};
    // Prometheus text format with millisecond timestamps: VictoriaMetrics' import takes no
    // `# ` lines and reads timestamps as milliseconds (seconds would land in 1970).
    let import = dir.join("import.prom");
    {
        let input = std::io::BufReader::new(std::fs::File::open(openmetrics).unwrap());
        let mut out = BufWriter::new(std::fs::File::create(&import).unwrap());
        for line in input.lines() {
            let line = line.unwrap();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (sample, seconds) = line.rsplit_once(' ').expect("a sample line");
            let seconds: i64 = seconds.parse().expect("whole-second timestamps");
            if seconds >= from {
                writeln!(out, "{sample} {}", seconds * 1000).unwrap();
            }
        }
        out.flush().unwrap();
    }
    let imported = Command::new("curl")
        // -T streams the file (--data-binary would read 1-2 GB into memory first).
        .args([
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-H",
            "Content-Type: text/plain",
            "-T",
        ])
        .arg(&import)
        .arg(format!("{url}/api/v1/import/prometheus"))
        .output()
        .expect("running curl");
    assert!(
        imported.status.success(),
        "importing into VictoriaMetrics failed: {}{}; see {}",
        String::from_utf8_lossy(&imported.stdout),
        String::from_utf8_lossy(&imported.stderr),
        dir.display()
    );
    victoria_metrics_internal(url, "force_flush");
    // VictoriaMetrics caches range-query results for times older than
    // `-search.cacheTimestampOffset` (5 minutes of wall time, so every synthetic hour), and
    // backfilled samples do not invalidate them: its documentation ("Backfilling") says to
    // reset the cache after importing old data. Without it a query the earlier run sent may
    // answer from before the import (seen once under load: an hour billed without the
    // namespace the import added).
    victoria_metrics_internal(url, "resetRollupResultCache");
    let _ = std::fs::remove_file(&import);
}

/// Call VictoriaMetrics' `/internal/<what>` endpoint; a failure fails the test.
fn victoria_metrics_internal(url: &str, what: &str) {
    let ok = Command::new("curl")
        .args(["-sf", &format!("{url}/internal/{what}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "VictoriaMetrics /internal/{what} failed");
}

/// Import `dataset`'s OpenMetrics file into a real VictoriaMetrics started in `dir`.
pub fn serve_victoria_metrics(dir: PathBuf, dataset: Dataset) -> TestPrometheus {
    require("victoria-metrics");
    let port = free_port();
    let log = std::fs::File::create(dir.join("victoria-metrics.log")).unwrap();
    let child = server("victoria-metrics")
        .arg(format!("-storageDataPath={}", dir.join("vm").display()))
        // Without it (one month by default) the synthetic November data would be dropped.
        .arg("-retentionPeriod=100y")
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-search.disableCache")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting victoria-metrics");
    let url = format!("http://127.0.0.1:{port}");
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !curl(&["-sf", &format!("{url}/health")]) {
        assert!(
            Instant::now() < deadline,
            "VictoriaMetrics did not become ready; see {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    import_victoria_metrics(&url, &dir, &dataset.openmetrics, i64::MIN);
    let _ = std::fs::remove_file(&dataset.openmetrics);
    TestPrometheus {
        url,
        dataset,
        dir,
        child,
    }
}

/// The standard cluster, shared by all tests of one test binary.
pub fn standard() -> &'static TestPrometheus {
    static P: OnceLock<TestPrometheus> = OnceLock::new();
    P.get_or_init(|| start_prometheus("standard", &Options::default()))
}

pub fn truth(p: &TestPrometheus) -> Vec<TruthRow> {
    serde_json::from_slice(&std::fs::read(&p.dataset.truth).unwrap()).unwrap()
}

pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_consumption-metrics"));
    // Nothing from the developer's environment leaks into a test: every flag reads one.
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "text")
        .env("NO_COLOR", "1");
    c
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Outcome {
    let out = cmd.output().expect("running consumption-metrics");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The JSON Schema shipped in schema/.
pub fn schema_validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schema/mcmp-message.schema.json")).unwrap();
    jsonschema::validator_for(&schema).expect("the shipped schema is valid")
}

/// A scripted HTTP server on 127.0.0.1 for fault injection: answers each request with the next
/// canned response (the last one repeats), and records each request (line, headers, body). Stops with the
/// test process; every connection is bounded by a read timeout. The job sends some queries side
/// by side, so which query comes first is not fixed: where that matters, use [`routed_http`].
pub struct ScriptedHttp {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn scripted_http(responses: Vec<(u16, &'static str, String)>) -> ScriptedHttp {
    let next = std::sync::atomic::AtomicUsize::new(0);
    routed_http(move |_| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        responses[i.min(responses.len() - 1)].clone()
    })
}

/// A scripted HTTP server like [`scripted_http`] that answers each request with what `route`
/// returns for it (its line, headers and body, as recorded).
pub fn routed_http(
    route: impl Fn(&str) -> (u16, &'static str, String) + Send + 'static,
) -> ScriptedHttp {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut length = 0usize;
            let mut head = line.trim().to_string();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                head.push('\n');
                head.push_str(h.trim());
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            head.push('\n');
            head.push_str(&String::from_utf8_lossy(&body));
            let (status, content_type, text) = route(&head);
            seen.lock().unwrap().push(head);
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    ScriptedHttp { url, requests }
}

/// Settings for librdkafka's mock cluster (plaintext only; the real-broker tests cover TLS).
#[cfg(feature = "test-hooks")]
pub fn mock_kafka_settings(
    bootstrap: String,
    topic: &str,
) -> consumption_metrics::kafka::KafkaSettings {
    consumption_metrics::kafka::KafkaSettings {
        brokers: bootstrap,
        topic: topic.into(),
        transport: consumption_metrics::kafka::Transport::PlaintextMockCluster,
        properties: vec![
            // Recover quickly after broker_up in tests.
            ("reconnect.backoff.ms".into(), "50".into()),
            ("retry.backoff.ms".into(), "50".into()),
        ],
        max_message_bytes: 900_000,
        delivery_timeout: Duration::from_secs(4),
        preflight_timeout: Duration::from_secs(5),
        cloudevents: true,
    }
}

/// A scheduled publishing run's configuration against `prometheus_url` at `now`, sending
/// with `kafka`.
pub fn publishing_config(
    prometheus_url: &str,
    now: &str,
    kafka: consumption_metrics::kafka::KafkaSettings,
) -> consumption_metrics::config::Config {
    let mut config = dry_run_config(prometheus_url, now);
    config.output = consumption_metrics::sink::Output::Publish(kafka);
    config
}

/// A dry-run's configuration against `prometheus_url` at `now`.
pub fn dry_run_config(prometheus_url: &str, now: &str) -> consumption_metrics::config::Config {
    dry_run_config_with(prometheus_url, now, &[])
}

/// [`dry_run_config`] with `extra` flags.
pub fn dry_run_config_with(
    prometheus_url: &str,
    now: &str,
    extra: &[&str],
) -> consumption_metrics::config::Config {
    use clap::Parser;
    let args = consumption_metrics::cli::Args::try_parse_from(
        [
            "consumption-metrics",
            "--prometheus-url",
            prometheus_url,
            "--cluster-name",
            "synth-01",
            // Parsed as a dry-run so that no TLS files are required; the output is replaced
            // below.
            "--dry-run",
            "--now",
            now,
        ]
        .iter()
        .chain(extra),
    )
    .unwrap();
    consumption_metrics::config::Config::from_args(&args, chrono::Utc::now()).unwrap()
}

/// `check --output json`'s lines: (check, verdict, detail), in order.
pub fn check_lines(out: &Outcome) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("check JSON: {e}\n{}\n{}", out.stdout, out.stderr));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["check"].as_str().unwrap().to_string(),
                l["verdict"].as_str().unwrap().to_string(),
                l["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A dry-run's messages of `cluster` as (hour start, namespace) → consumption; a namespace
/// twice in one hour fails the test.
pub fn by_namespace_hour(
    messages: &[serde_json::Value],
    cluster: &str,
) -> std::collections::BTreeMap<(i64, String), serde_json::Value> {
    let mut out = std::collections::BTreeMap::new();
    for m in messages {
        let ts = m["header"]["consumption_start_ts"].as_str().unwrap();
        let hour = chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .timestamp();
        for e in m["payload"].as_array().unwrap() {
            let id = e["external_id"].as_str().unwrap();
            let ns = id.strip_prefix(&format!("{cluster}_")).unwrap().to_string();
            let prev = out.insert((hour, ns.clone()), e["consumption"].clone());
            assert!(prev.is_none(), "{ns} appears twice in hour {ts}");
        }
    }
    out
}

/// A scheduled run at `now` from the checkpoint `from`, publishing to a mock cluster: its
/// outcome (exit code, message) and the checkpoint after it.
#[cfg(feature = "test-hooks")]
pub async fn scheduled(
    p: &TestPrometheus,
    from: &str,
    now: &str,
) -> (Result<(), (u8, String)>, String) {
    scheduled_with(p, from, now, &[]).await
}

/// [`scheduled`] with `extra` flags.
#[cfg(feature = "test-hooks")]
pub async fn scheduled_with(
    p: &TestPrometheus,
    from: &str,
    now: &str,
    extra: &[&str],
) -> (Result<(), (u8, String)>, String) {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("mcmp", 1, 1).unwrap();
    let settings = mock_kafka_settings(cluster.bootstrap_servers(), "mcmp");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    std::fs::write(&path, format!("{from}\n")).unwrap();
    let mut config = dry_run_config_with(&p.url, now, extra);
    config.output = consumption_metrics::sink::Output::Publish(settings);
    let prometheus = consumption_metrics::prometheus::Prometheus::new(&config.prometheus).unwrap();
    let mut manager = consumption_metrics::manager::Manager::with_checkpoint(
        config,
        prometheus,
        consumption_metrics::checkpoint::Checkpoint::File(
            consumption_metrics::checkpoint::FileCheckpoint::new(&path),
        ),
    );
    let outcome = manager
        .run()
        .await
        .map(|_| ())
        .map_err(|e| (e.exit_code(), e.to_string()));
    let checkpoint = std::fs::read_to_string(&path).unwrap().trim().to_string();
    (outcome, checkpoint)
}

/// The chart and manifest tests' tools (scripts/chart-tools.txt: helm-python-sdk and a pinned
/// kubectl), in the virtual environment scripts/install-deps.sh makes: $CHART_TOOLS, else
/// /opt/consumption-metrics-tools (as root), else ~/.cache/consumption-metrics/tools.
pub fn chart_tools() -> Option<PathBuf> {
    tool_roots("CHART_TOOLS", "/opt/consumption-metrics-tools", "tools")
        .into_iter()
        .find(|r| r.join("bin/python").exists())
}

/// Where scripts/install-deps.sh may have put a tool, in the order it decides: `$env`, `opt`
/// (as root), `~/.cache/consumption-metrics/<cache>` (as another user).
pub fn tool_roots(env: &str, opt: &str, cache: &str) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .collect();
    roots.push(opt.into());
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(
            PathBuf::from(home)
                .join(".cache/consumption-metrics")
                .join(cache),
        );
    }
    roots
}

/// `kubectl`: the pinned one of the tools when installed, else whichever is on PATH.
pub fn kubectl() -> Command {
    match chart_tools().map(|t| t.join("bin/kubectl")) {
        Some(k) if k.exists() => Command::new(k),
        _ => Command::new("kubectl"),
    }
}

/// The tools' Python running scripts/chart.py (helm-python-sdk).
pub fn chart_py() -> Command {
    let tools = chart_tools().unwrap_or_else(|| {
        panic!(
            "the chart tools are not installed (helm-python-sdk, scripts/chart-tools.txt); run \
             `bash scripts/install-deps.sh`"
        )
    });
    let mut c = Command::new(tools.join("bin/python"));
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/chart.py"));
    c
}

/// A YAML stream (a render's output) as JSON values, empty documents dropped.
pub fn yaml_documents(yaml: &[u8]) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_slice(yaml)
        .map(|doc| serde_json::Value::deserialize(doc).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// `kubectl kustomize` of `kustomize/overlays/<overlay>`.
pub fn kustomize(overlay: &str) -> Vec<serde_json::Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kustomize/overlays")
        .join(overlay);
    let out =
        kubectl().arg("kustomize").arg(&dir).output().expect(
            "kubectl is needed for the manifest tests (scripts/install-deps.sh installs it)",
        );
    assert!(
        out.status.success(),
        "{overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_documents(&out.stdout)
}

/// The environment and arguments the rendered CronJob's container gets (its ConfigMaps' data,
/// then its own `env`), resolved as the kubelet resolves them: a `fieldRef` is the namespace.
pub fn container_env(
    objects: &[serde_json::Value],
    namespace: &str,
) -> (std::collections::BTreeMap<String, String>, Vec<String>) {
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} is rendered"))
    };
    let container = &find("CronJob", "consumption-metrics")["spec"]["jobTemplate"]["spec"]["template"]
        ["spec"]["containers"][0];
    let mut env = std::collections::BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let name = from["configMapRef"]["name"]
            .as_str()
            .expect("only ConfigMaps feed the environment");
        for (k, v) in find("ConfigMap", name)["data"]
            .as_object()
            .into_iter()
            .flatten()
        {
            env.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let value = match (e["value"].as_str(), e["valueFrom"].is_object()) {
            (Some(v), _) => v.to_string(),
            (None, true) => {
                let field = &e["valueFrom"]["fieldRef"]["fieldPath"];
                assert_eq!(
                    field, "metadata.namespace",
                    "only the namespace is a fieldRef"
                );
                namespace.to_string()
            }
            _ => String::new(),
        };
        env.insert(e["name"].as_str().unwrap_or_default().to_string(), value);
    }
    let args = ["command", "args"]
        .iter()
        .flat_map(|k| container[*k].as_array().cloned().unwrap_or_default())
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect();
    (env, args)
}
