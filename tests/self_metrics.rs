//! The job's own metrics reach a real Pushgateway (Debian's prometheus-pushgateway) after a
//! publishing run and after a failed one, and a real Prometheus scraping that Pushgateway sees
//! them with the documented names, labels and values.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::kafka::{TestKafka, start_kafka};
use common::{bin, free_port, run, server, standard};
use serde_json::Value;

fn kafka() -> &'static TestKafka {
    static K: OnceLock<TestKafka> = OnceLock::new();
    K.get_or_init(|| start_kafka("self-metrics"))
}

struct Monitoring {
    pushgateway: String,
    prometheus: String,
    _children: Vec<Child>,
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        for c in &mut self._children {
            common::stop(c);
        }
    }
}

fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("curl")
        .args(["-sf", url])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "{url} did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Pushgateway, and a Prometheus scraping it every second (honor_labels, as a Pushgateway
/// needs).
fn monitoring(dir: &Path) -> Monitoring {
    let (pg_port, prom_port) = (free_port(), free_port());
    // Debian's package defaults to --persistence.file=/var/lib/prometheus/pushgateway.data:
    // every Pushgateway started without this would load what earlier ones (and anything else
    // on the machine) pushed. Its own file in the test's directory keeps it empty.
    let pushgateway = server("prometheus-pushgateway")
        .arg(format!("--web.listen-address=127.0.0.1:{pg_port}"))
        .arg(format!(
            "--persistence.file={}",
            dir.join("pushgateway.data").display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("pushgateway.log")).unwrap())
        .spawn()
        .expect("starting prometheus-pushgateway");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: pushgateway\n    \
             honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{pg_port}']\n"
        ),
    )
    .unwrap();
    let prometheus = server("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("starting prometheus");
    let m = Monitoring {
        pushgateway: format!("http://127.0.0.1:{pg_port}"),
        prometheus: format!("http://127.0.0.1:{prom_port}"),
        _children: vec![pushgateway, prometheus],
    };
    wait_http(&format!("{}/-/ready", m.pushgateway));
    wait_http(&format!("{}/-/ready", m.prometheus));
    // Hermetic: nothing pushed before this test is there.
    let groups = Command::new("curl")
        .args(["-sf", &format!("{}/api/v1/metrics", m.pushgateway)])
        .output()
        .unwrap();
    let groups: Value = serde_json::from_slice(&groups.stdout).unwrap_or(Value::Null);
    assert_eq!(
        groups["data"],
        serde_json::json!([]),
        "the Pushgateway starts empty"
    );
    m
}

/// Instant query against the scraping Prometheus: labels and value of each series.
fn query(prometheus: &str, q: &str) -> Vec<(Value, f64)> {
    let out = Command::new("curl")
        .args(["-sf", "--data-urlencode", &format!("query={q}")])
        .arg(format!("{prometheus}/api/v1/query"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let value = s["value"][1].as_str().unwrap().parse::<f64>().unwrap();
            (s["metric"].clone(), value)
        })
        .collect()
}

/// Wait until `q` returns `want` (the scrape interval is 1 s).
fn eventually(prometheus: &str, q: &str, want: f64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = query(prometheus, q);
        if let [(labels, v)] = got.as_slice()
            && *v == want
        {
            return labels.clone();
        }
        assert!(Instant::now() < deadline, "{q}: {got:?}, want {want}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn runs_push_their_metrics_and_prometheus_scrapes_them() {
    let k = kafka();
    k.create_topic("mcmp-self-metrics");
    let dir = tempfile::tempdir().unwrap();
    let m = monitoring(dir.path());
    let cp = dir.path().join("checkpoint");
    std::fs::write(&cp, "2026-11-01T01:00:00Z\n").unwrap();
    let job = |topic: &str, now: &str| {
        run(bin()
            .args([
                "--prometheus-url",
                &standard().url,
                "--cluster-name",
                "synth-01",
            ])
            .args(["--now", now, "--pushgateway-url", &m.pushgateway])
            .args(["--kafka-delivery-timeout", "5s"])
            .arg("--checkpoint-file")
            .arg(&cp)
            .args(k.flags(topic)))
    };

    // A scheduled run publishes three hours.
    let out = job("mcmp-self-metrics", "2026-11-01T04:10:00Z");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("run metrics pushed"), "{}", out.stderr);
    let p = &m.prometheus;
    let sel = r#"{job="consumption-metrics",cluster="synth-01"}"#;
    eventually(
        p,
        &format!("consumption_metrics_last_run_hours_published{sel}"),
        3.0,
    );
    eventually(
        p,
        &format!("consumption_metrics_last_run_hours_planned{sel}"),
        3.0,
    );
    eventually(
        p,
        &format!("consumption_metrics_last_run_messages{sel}"),
        3.0,
    );
    eventually(
        p,
        &format!("consumption_metrics_last_run_success{sel}"),
        1.0,
    );
    eventually(
        p,
        r#"consumption_metrics_last_run_outcome{class="ok",cluster="synth-01"}"#,
        1.0,
    );
    let checkpoint = chrono::DateTime::parse_from_rfc3339("2026-11-01T04:00:00Z")
        .unwrap()
        .timestamp() as f64;
    eventually(
        p,
        &format!("consumption_metrics_checkpoint_timestamp_seconds{sel}"),
        checkpoint,
    );
    eventually(
        p,
        r#"consumption_metrics_query_windows_info{windows="closed",cluster="synth-01"}"#,
        1.0,
    );
    let build = eventually(p, &format!("consumption_metrics_build_info{sel}"), 1.0);
    assert_eq!(build["version"], env!("CARGO_PKG_VERSION"));
    for q in [
        "consumption_metrics_last_run_payload_bytes",
        "consumption_metrics_last_run_prometheus_requests",
        "consumption_metrics_last_run_prometheus_request_duration_seconds",
        r#"consumption_metrics_last_run_step_duration_seconds{step="collect"}"#,
        r#"consumption_metrics_last_run_step_duration_seconds{step="deliver"}"#,
    ] {
        let got = query(p, q);
        assert!(
            matches!(got.as_slice(), [(_, v)] if *v > 0.0),
            "{q}: {got:?}"
        );
    }
    let success = query(p, "consumption_metrics_last_success_timestamp_seconds")[0].1;

    // A failing run (a topic that does not exist: exit 5) replaces the run's metrics and keeps
    // the last success, which "no success for N hours" relies on.
    let out = job("no-such-topic", "2026-11-01T05:10:00Z");
    assert_eq!(out.code, 5, "{}", out.stderr);
    eventually(
        p,
        &format!("consumption_metrics_last_run_success{sel}"),
        0.0,
    );
    eventually(
        p,
        &format!("consumption_metrics_last_run_exit_code{sel}"),
        5.0,
    );
    eventually(
        p,
        r#"consumption_metrics_last_run_outcome{class="output",cluster="synth-01"}"#,
        1.0,
    );
    eventually(
        p,
        &format!("consumption_metrics_last_run_hours_published{sel}"),
        0.0,
    );
    eventually(
        p,
        &format!("consumption_metrics_last_success_timestamp_seconds{sel}"),
        success,
    );
    // The checkpoint did not move.
    eventually(
        p,
        &format!("consumption_metrics_checkpoint_timestamp_seconds{sel}"),
        checkpoint,
    );
    dashboard_queries_return_data(p);

    // A dry-run that succeeds pushes under its own job: the CronJob's failure stays visible
    // (last_run_success 0, the last success unchanged) to the alerts.
    let out = run(bin()
        .args([
            "--prometheus-url",
            &standard().url,
            "--cluster-name",
            "synth-01",
        ])
        .args(["--dry-run", "--now", "2026-11-01T05:10:00Z"])
        .args(["--pushgateway-url", &m.pushgateway]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dry = r#"{job="consumption-metrics-dry-run",cluster="synth-01"}"#;
    eventually(
        p,
        &format!("consumption_metrics_last_run_success{dry}"),
        1.0,
    );
    eventually(
        p,
        &format!("consumption_metrics_last_run_success{sel}"),
        0.0,
    );
    eventually(
        p,
        &format!("consumption_metrics_last_success_timestamp_seconds{sel}"),
        success,
    );
}

/// A Pushgateway that is down never fails the run.
#[test]
fn an_unreachable_pushgateway_changes_nothing() {
    let out = run(bin()
        .args([
            "--prometheus-url",
            &standard().url,
            "--cluster-name",
            "synth-01",
        ])
        .args(["--dry-run", "--now", "2026-11-02T00:00:00Z"])
        .args([
            "--since",
            "2026-11-01T03:00:00Z",
            "--until",
            "2026-11-01T04:00:00Z",
        ])
        .args([
            "--pushgateway-url",
            &format!("http://127.0.0.1:{}", free_port()),
        ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("could not push the run's metrics"),
        "{}",
        out.stderr
    );
    let messages: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(messages.as_array().unwrap().len(), 1);
}

/// Secrets never logged: at RUST_LOG=trace, in text and JSON, on a successful publishing run
/// and on failing ones, neither the bearer token nor the Kafka client key (nor the URL's
/// password) appears in any output, nor in --check-config.
#[test]
fn secrets_stay_out_of_every_output_even_at_trace() {
    let k = kafka();
    k.create_topic("mcmp-secrets");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-DISTINCTIVE-7f3a9\n").unwrap();
    let key_pem = std::fs::read_to_string(&k.pki.client.key).unwrap();
    // The key's base64 body, line by line: any of them in a log is a leak.
    let key_lines: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect();
    assert!(!key_lines.is_empty());
    let url = standard()
        .url
        .replace("http://", "http://user:pw-DISTINCTIVE-91b@");
    for format in ["text", "json"] {
        for (topic, now, code) in [
            ("mcmp-secrets", "2026-11-01T03:10:00Z", 0),
            ("no-such-topic", "2026-11-01T04:10:00Z", 5),
        ] {
            let cp = dir.path().join(format!("cp-{format}-{code}"));
            std::fs::write(&cp, "2026-11-01T02:00:00Z\n").unwrap();
            let base = |extra: &[&str]| {
                run(bin()
                    .env("RUST_LOG", "trace")
                    .env("LOG_FORMAT", format)
                    .args(["--prometheus-url", &url, "--cluster-name", "synth-01"])
                    .arg("--prometheus-bearer-token-file")
                    .arg(&token)
                    .args(["--now", now, "--kafka-delivery-timeout", "5s"])
                    .arg("--checkpoint-file")
                    .arg(&cp)
                    .args(k.flags(topic))
                    .args(extra))
            };
            for out in [base(&[]), base(&["--check-config"])] {
                let all = format!("{}{}", out.stdout, out.stderr);
                assert!(all.len() > 100, "{format}: little output: {all}");
                for secret in ["tok-DISTINCTIVE-7f3a9", "pw-DISTINCTIVE-91b"]
                    .into_iter()
                    .chain(key_lines.iter().copied())
                {
                    assert!(
                        !all.contains(secret),
                        "{format}, exit {}: {secret} in the output",
                        out.code
                    );
                }
            }
            let out = base(&[]);
            assert_eq!(out.code, code, "{format}: {}", out.stderr);
        }
    }
}

/// Every query of the Grafana dashboard in deploy/grafana, with its variables set, returns
/// data from a Prometheus that scraped the job's pushed metrics.
fn dashboard_queries_return_data(prometheus: &str) {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/consumption-metrics.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$cluster", ".*");
            let got = query(prometheus, &expr);
            assert!(
                !got.is_empty(),
                "panel {:?}: {expr} returned nothing",
                panel["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} queries");
}

/// SIGTERM (what `activeDeadlineSeconds` and a node drain send) mid-run: the one-line error,
/// the failure pushed, a non-zero exit (143), nothing on stdout. It once left no `run failed`
/// event and pushed nothing.
#[test]
fn sigterm_is_reported_pushed_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let m = monitoring(dir.path());
    // A Prometheus that accepts connections and never answers: the run waits in a query.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming() {
            held.push(s);
        }
    });
    let child = bin()
        .args(["--prometheus-url", &url, "--cluster-name", "synth-sigterm"])
        .args(["--dry-run", "--now", "2026-11-02T00:00:00Z"])
        .args([
            "--since",
            "2026-11-01T03:00:00Z",
            "--until",
            "2026-11-01T04:00:00Z",
        ])
        .args([
            "--window-semantics",
            "closed",
            "--pushgateway-url",
            &m.pushgateway,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    let killed = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(killed, 0, "{}", std::io::Error::last_os_error());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(line.contains("stopped by SIGTERM"), "{line}");
    assert!(line.contains("activeDeadlineSeconds"), "{line}");
    let sel = r#"{job="consumption-metrics-dry-run",cluster="synth-sigterm"}"#;
    eventually(
        &m.prometheus,
        &format!("consumption_metrics_last_run_exit_code{sel}"),
        143.0,
    );
    eventually(
        &m.prometheus,
        &format!("consumption_metrics_last_run_success{sel}"),
        0.0,
    );
}
