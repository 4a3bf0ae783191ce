//! What a person sees: `--help`, a dry-run message, and one clear error line with a documented
//! exit code for each kind of bad input, with nothing on stdout.

mod common;

use std::collections::BTreeMap;

use common::{Outcome, ScriptedHttp, bin, rfc3339, routed_http, run, scripted_http, standard};

const NOW: &str = "2026-11-02T00:00:00Z";

fn base(url: &str) -> std::process::Command {
    let mut c = bin();
    c.args([
        "--prometheus-url",
        url,
        "--cluster-name",
        "synth-01",
        "--dry-run",
    ])
    .env("NOW", NOW)
    .env("PROMETHEUS_RETRIES", "0")
    // Scripted servers answer in order; the window probe is tested on real engines
    // (tests/accuracy.rs), so these runs skip it.
    .env("WINDOW_SEMANTICS", "closed");
    c
}

fn backfill(url: &str) -> std::process::Command {
    let mut c = base(url);
    c.args([
        "--since",
        "2026-11-01T02:00:00Z",
        "--until",
        "2026-11-01T04:00:00Z",
    ]);
    c
}

/// A failed run: the expected exit code, one line naming the problem, an empty stdout.
fn assert_fails(out: &Outcome, code: i32, needles: &[&str]) -> String {
    assert_eq!(out.code, code, "stderr: {}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "stdout after an error: {}",
        out.stdout
    );
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {}", out.stderr))
        .to_string();
    for n in needles {
        assert!(line.contains(n), "{n:?} not in {line:?}");
    }
    line
}

#[test]
fn help_snapshot() {
    let out = run(bin().arg("--help").env("COLUMNS", "100"));
    assert_eq!(out.code, 0);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn audit_help_snapshot() {
    let out = run(bin().args(["audit", "--help"]).env("COLUMNS", "100"));
    assert_eq!(out.code, 0);
    insta::assert_snapshot!(out.stdout);
}

/// The configuration reference (docs/configuration.md) names every flag and environment variable of `--help`
/// and of `audit --help`.
#[test]
fn every_flag_and_variable_is_in_the_configuration_reference() {
    let help = run(bin().arg("--help")).stdout
        + &run(bin().args(["audit", "--help"])).stdout
        + &run(bin().args(["check", "--help"])).stdout;
    let readme = include_str!("../docs/configuration.md");
    let mut names = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        if let Some(flag) = line
            .split([' ', ','])
            .find(|w| w.starts_with("--") && *w != "--help" && *w != "--version")
            .filter(|_| line.starts_with('-'))
        {
            names.push(flag.to_string());
        }
        if let Some(rest) = line.split("[env: ").nth(1) {
            names.push(rest.split(['=', ']']).next().unwrap().to_string());
        }
    }
    assert!(names.len() > 50, "parsed only {names:?} from --help");
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !readme.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn dry_run_message_snapshot() {
    let p = standard();
    let out = run(base(&p.url)
        .args([
            "--since",
            "2026-11-01T03:00:00Z",
            "--until",
            "2026-11-01T04:00:00Z",
        ])
        .args(["--storage-tier", "gold=premium,cephfs=basic"])
        .args(["--service-location", "ALLN"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    // The hand-made namespaces only: the random tenants are covered by the accuracy tests.
    let mut m = v[0].clone();
    m["payload"].as_array_mut().unwrap().retain(|e| {
        e["external_id"]
            .as_str()
            .unwrap()
            .starts_with("synth-01_team-")
    });
    insta::assert_json_snapshot!(m);
}

#[test]
fn storage_tiers_come_from_the_environment_too() {
    let p = standard();
    let flags = run(backfill(&p.url).args([
        "--storage-tier",
        "gold=premium",
        "--storage-tier",
        "cephfs=basic",
    ]));
    let env = run(backfill(&p.url).env("STORAGE_TIERS", "gold=premium,cephfs=basic"));
    assert_eq!(flags.code, 0, "{}", flags.stderr);
    assert_eq!(flags.stdout, env.stdout);
}

#[test]
fn scheduled_dry_run_reads_the_checkpoint_file_and_leaves_it() {
    let p = standard();
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    std::fs::write(&cp, "2026-11-01T03:00:00Z\n").unwrap();
    let out = run(base(&p.url)
        .args(["--now", "2026-11-01T05:10:00Z"])
        .arg("--checkpoint-file")
        .arg(&cp));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let starts: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["header"]["consumption_start_ts"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-11-01T03:00:00.000000+00:00",
            "2026-11-01T04:00:00.000000+00:00"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap(),
        "2026-11-01T03:00:00Z\n"
    );
}

#[test]
fn bad_ranges_are_usage_errors() {
    let url = "http://127.0.0.1:9";
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &[
                "--since",
                "2026-11-01T04:00:00Z",
                "--until",
                "2026-11-01T02:00:00Z",
            ],
            &["--since", "not before --until"],
        ),
        (
            &[
                "--since",
                "2026-11-01T02:30:00Z",
                "--until",
                "2026-11-01T04:00:00Z",
            ],
            &["--since 2026-11-01T02:30:00Z", "start of an hour"],
        ),
        (
            &[
                "--since",
                "2026-11-01T22:00:00Z",
                "--until",
                "2026-11-02T01:00:00Z",
            ],
            &[
                "--until 2026-11-02T01:00:00Z",
                "not yet billable",
                "2026-11-01T23:00:00Z",
            ],
        ),
        (
            &[
                "--since",
                "2026-10-01T00:00:00Z",
                "--until",
                "2026-11-01T00:00:00Z",
            ],
            &["744 hours", "cap of 168", "--max-hours-per-run"],
        ),
        (
            &["--since", "yesterday", "--until", "2026-11-01T00:00:00Z"],
            &["--since \"yesterday\"", "RFC 3339"],
        ),
        (
            &[
                "--since",
                "2026-11-01T00:00:00Z",
                "--until",
                "2026-11-01T01:00:00Z",
                "--storage-tier",
                "gold",
            ],
            &["--storage-tier", "CLASS=TIER"],
        ),
    ];
    for (args, needles) in cases {
        assert_fails(&run(base(url).args(args)), 2, needles);
    }
}

#[test]
fn since_without_until_is_refused_by_the_parser() {
    let out = run(base("http://127.0.0.1:9").args(["--since", "2026-11-01T00:00:00Z"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--until"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn a_malformed_checkpoint_file_is_a_checkpoint_error() {
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    std::fs::write(&cp, "not a time\n").unwrap();
    let out = run(base("http://127.0.0.1:9").arg("--checkpoint-file").arg(&cp));
    assert_fails(&out, 3, &["checkpoint file", "not a time", "RFC 3339"]);
    std::fs::write(&cp, "2026-12-01T00:00:00Z\n").unwrap();
    let out = run(base("http://127.0.0.1:9").arg("--checkpoint-file").arg(&cp));
    assert_fails(&out, 3, &["after now"]);
}

#[test]
fn an_unreachable_prometheus_is_named() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&mut backfill(&url));
    assert_fails(
        &out,
        4,
        &["could not reach Prometheus", &url, "--prometheus-url"],
    );
}

#[test]
fn an_html_answer_is_not_taken_for_data() {
    let http = scripted_http(vec![(
        200,
        "text/html",
        "<html><body>Sign in</body></html>".into(),
    )]);
    let out = run(&mut backfill(&http.url));
    assert_fails(
        &out,
        4,
        &[
            "not Prometheus JSON",
            "text/html",
            "<html>",
            "without /api/v1",
        ],
    );
}

#[test]
fn a_4xx_shows_prometheus_error_body() {
    let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error"}"#;
    let http = scripted_http(vec![(400, "application/json", body.into())]);
    let out = run(&mut backfill(&http.url));
    assert_fails(&out, 4, &["HTTP 400", "bad_data", "parse error"]);
}

/// Text from the server reaches the log with its control characters escaped: it cannot forge
/// a log line of its own or send escape codes to a terminal.
#[test]
fn server_text_cannot_forge_log_lines_or_escape_codes() {
    let body = "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"bad\\nerror: forged line\\u001b[2J\"}";
    let http = scripted_http(vec![(422, "application/json", body.into())]);
    let out = run(&mut backfill(&http.url));
    let line = assert_fails(&out, 4, &["HTTP 422", "bad\\nerror: forged line\\u{1b}[2J"]);
    assert!(!out.stderr.contains('\u{1b}'), "{}", out.stderr);
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("error: forged")),
        "{line}"
    );
}

#[test]
fn a_query_execution_error_is_reported() {
    let body = r#"{"status":"error","errorType":"execution","error":"found duplicate series for the match group"}"#;
    let http = scripted_http(vec![(422, "application/json", body.into())]);
    let out = run(&mut backfill(&http.url));
    assert_fails(&out, 4, &["HTTP 422", "execution", "duplicate series"]);
}

#[test]
fn partial_data_fails_the_hour_by_default() {
    let body = r#"{"status":"success","warnings":["remote read: store unavailable"],"data":{"resultType":"matrix","result":[]}}"#;
    let http = scripted_http(vec![(200, "application/json", body.into())]);
    let out = run(&mut backfill(&http.url));
    assert_fails(
        &out,
        4,
        &["partial data", "store unavailable", "--allow-partial-data"],
    );
}

/// How many times each query reached a scripted server, by its form (query and range). The
/// queries that need nothing from each other go side by side, so a failing server sees each
/// of them until the first one's error stops the run; a connection the stopping run closed
/// before sending anything is not a try.
fn tries(server: &ScriptedHttp) -> BTreeMap<String, usize> {
    let mut tries = BTreeMap::new();
    for request in server.requests.lock().unwrap().iter() {
        if request.trim().is_empty() {
            continue;
        }
        let form = request.lines().last().unwrap_or_default().to_string();
        *tries.entry(form).or_insert(0) += 1;
    }
    tries
}

#[test]
fn server_errors_are_retried_then_reported() {
    let http = scripted_http(vec![(503, "text/plain", "overloaded".into())]);
    let out = run(backfill(&http.url).args(["--prometheus-retries", "2"]));
    assert_fails(&out, 4, &["HTTP 503", "overloaded"]);
    // Each query tried three times at most, and the one that stopped the run three times.
    let asked = tries(&http);
    assert!(asked.values().all(|n| *n <= 3), "{asked:?}");
    assert_eq!(asked.values().max(), Some(&3), "{asked:?}");
}

/// The token file, extra headers and the form-encoded range query reach Prometheus.
#[test]
fn token_and_headers_are_sent() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    let http = scripted_http(vec![(200, "application/json", body.into())]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t\n").unwrap();
    let out = run(backfill(&http.url)
        .arg("--prometheus-bearer-token-file")
        .arg(&token)
        .args(["--prometheus-header", "X-Scope-OrgID=tenant-a"]));
    // The empty answer means no data: the run fails, but only after the requests were seen.
    assert_fails(&out, 4, &["no kube-state-metrics data"]);
    let requests = http.requests.lock().unwrap();
    assert!(requests.len() >= 2, "{requests:?}");
    for request in requests.iter().map(|r| r.to_ascii_lowercase()) {
        assert!(request.starts_with("post /api/v1/query"), "{request}");
        assert!(
            request.contains("authorization: bearer s3cr3t"),
            "{request}"
        );
        assert!(request.contains("x-scope-orgid: tenant-a"), "{request}");
    }
    // A range query of the hours, at step 1h (the first asks for the store's time).
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("POST /api/v1/query_range ") && r.contains("step=3600s")),
        "{requests:?}"
    );
}

#[test]
fn a_missing_token_file_is_named() {
    let out = run(backfill("http://127.0.0.1:9")
        .args(["--prometheus-bearer-token-file", "/nonexistent/token"]));
    assert_fails(
        &out,
        4,
        &["--prometheus-bearer-token-file /nonexistent/token"],
    );
}

#[test]
fn hours_without_data_are_an_empty_result_error() {
    let p = standard();
    let out = run(base(&p.url).args([
        "--since",
        "2026-10-20T00:00:00Z",
        "--until",
        "2026-10-20T02:00:00Z",
    ]));
    assert_fails(
        &out,
        4,
        &[
            "no kube-state-metrics data",
            "2026-10-20T00:00:00Z",
            "retention",
        ],
    );
}

#[test]
fn publishing_needs_every_kafka_flag() {
    let out = run(bin().args([
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--cluster-name",
        "c",
    ]));
    assert_fails(&out, 2, &["publishing needs --kafka-brokers", "--dry-run"]);
    let out = run(bin()
        .args([
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--cluster-name",
            "c",
        ])
        .args([
            "--kafka-brokers",
            "b:9093",
            "--kafka-topic",
            "t",
            "--kafka-ca",
            "/ca",
        ]));
    assert_fails(&out, 2, &["publishing needs --kafka-cert"]);
}

#[test]
fn kafka_properties_that_weaken_delivery_are_refused() {
    let out = run(bin()
        .args([
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--cluster-name",
            "c",
        ])
        .args(["--kafka-brokers", "b:9093", "--kafka-topic", "t"])
        .args([
            "--kafka-ca",
            "/ca",
            "--kafka-cert",
            "/c",
            "--kafka-key",
            "/k",
        ])
        .args([
            "--kafka-property",
            "linger.ms=5",
            "--kafka-property",
            "acks=1",
        ]));
    assert_fails(
        &out,
        2,
        &["--kafka-property", "acks=1 is refused", "acks=all"],
    );
}

#[test]
fn the_data_range_matches_the_fixture() {
    // Guards the hard-coded ranges above against a change of the standard cluster.
    let p = standard();
    assert_eq!(rfc3339(p.dataset.first_truth_hour), "2026-11-01T01:00:00Z");
    assert_eq!(rfc3339(p.dataset.data_end), "2026-11-01T06:00:00Z");
}

/// Every alias of a key another flag owns, every weakened TLS check, every key that loads code
/// and every non-mTLS login is refused, and a refusal never prints a secret value.
#[test]
fn tls_weakening_and_alias_properties_are_refused() {
    let kafka = |prop: &str| {
        run(bin()
            .args([
                "--prometheus-url",
                "http://127.0.0.1:9",
                "--cluster-name",
                "c",
            ])
            .args(["--kafka-brokers", "b:9093", "--kafka-topic", "t"])
            .args([
                "--kafka-ca",
                "/ca",
                "--kafka-cert",
                "/c",
                "--kafka-key",
                "/k",
            ])
            .args(["--kafka-property", "linger.ms=5", "--kafka-property", prop]))
    };
    for (prop, says) in [
        (
            "ssl.endpoint.identification.algorithm=none",
            "host names must be checked",
        ),
        ("metadata.broker.list=evil:9093", "set by --kafka-brokers"),
        ("delivery.timeout.ms=1", "set by --kafka-delivery-timeout"),
        ("ssl.ca.pem=x", "set by --kafka-ca"),
        ("ssl.key.pem=hunter2", "set by --kafka-key"),
        ("sasl.password=hunter2", "mutual TLS only"),
        ("ssl.cipher.suites=eNULL", "NULL cipher"),
        // Native code loaded into the producer (plugins, OpenSSL providers).
        ("plugin.library.paths=/tmp/x.so", "native code"),
        ("ssl.providers=legacy", "native code"),
    ] {
        let out = kafka(prop);
        let line = assert_fails(&out, 2, &["--kafka-property", says]);
        assert!(!line.contains("hunter2"), "a secret in {line:?}");
    }
    // Part of a secret split at a comma in KAFKA_PROPERTIES is not echoed either.
    let out = run(bin()
        .args([
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--cluster-name",
            "c",
        ])
        .args(["--kafka-brokers", "b:9093", "--kafka-topic", "t"])
        .args([
            "--kafka-ca",
            "/ca",
            "--kafka-cert",
            "/c",
            "--kafka-key",
            "/k",
        ])
        .env("KAFKA_PROPERTIES", "linger.ms=5,hunter2"));
    let line = assert_fails(&out, 2, &["item 2 is not KEY=VALUE"]);
    assert!(!line.contains("hunter2"), "{line}");
}

/// The password of a URL, the bearer token and header values never reach stderr or
/// --check-config, even when an error page echoes the request.
#[test]
fn secrets_never_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-s3cr3t-123\n").unwrap();
    // user:hunter2 as Basic authentication.
    let basic = "dXNlcjpodW50ZXIy";
    let echo = format!(
        "<html>request headers: Authorization: Bearer tok-s3cr3t-123 / Basic {basic} / \
         password hunter2 / X-Api-Key: key-s3cr3t</html>"
    );
    let server = scripted_http(vec![(500, "text/html", echo)]);
    let with_password = server.url.replace("http://", "http://user:hunter2@");
    let out = run(base(&with_password)
        .arg("--prometheus-bearer-token-file")
        .arg(&token)
        .args(["--prometheus-header", "X-Api-Key=key-s3cr3t"])
        .args([
            "--since",
            "2026-11-01T03:00:00Z",
            "--until",
            "2026-11-01T04:00:00Z",
        ]));
    let line = assert_fails(&out, 4, &["HTTP 500", "user:***@"]);
    for secret in ["hunter2", "tok-s3cr3t", basic, "key-s3cr3t"] {
        assert!(!out.stderr.contains(secret), "{secret} in {}", out.stderr);
    }
    assert!(line.contains("<redacted>"), "{line}");
    // The request did carry them: the server saw the Basic credentials.
    let seen = server.requests.lock().unwrap().join("\n");
    assert!(seen.contains(basic), "{seen}");

    let out = run(base(&with_password).arg("--check-config"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("user:***@"), "{}", out.stdout);
    assert!(!out.stdout.contains("hunter2"));

    // Unreachable, and unparsable: neither prints the password.
    let out = run(base("http://user:hunter2@127.0.0.1:9").args([
        "--since",
        "2026-11-01T03:00:00Z",
        "--until",
        "2026-11-01T04:00:00Z",
    ]));
    assert_fails(&out, 4, &["could not reach"]);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    let out = run(&mut base("http://user:hunter2@exa mple:99999"));
    assert_fails(&out, 2, &["--prometheus-url", "***@"]);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
}

/// Billing data comes from the configured origin: a redirect to another origin stops the
/// run (not retried), a same-origin redirect is followed with the query intact.
#[test]
fn redirects_leave_the_origin_only_with_an_error() {
    let elsewhere = scripted_http(vec![(200, "application/json", String::new())]);
    let location = format!(
        "text/plain\r\nLocation: {}/api/v1/query_range",
        elsewhere.url
    );
    let server = scripted_http(vec![(
        307,
        Box::leak(location.into_boxed_str()),
        String::new(),
    )]);
    let out = run(base(&server.url).env("PROMETHEUS_RETRIES", "2").args([
        "--since",
        "2026-11-01T03:00:00Z",
        "--until",
        "2026-11-01T04:00:00Z",
    ]));
    assert_fails(&out, 4, &["redirected", "another origin", &elsewhere.url]);
    assert!(
        elsewhere.requests.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
    let asked = tries(&server);
    assert!(
        asked.values().all(|n| *n == 1),
        "a refused redirect is not retried: {asked:?}"
    );

    // Every query is redirected once: whichever fails first, its redirect was followed.
    let same = routed_http(|request| {
        if request.starts_with("POST /moved/") {
            let empty = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
            (200, "application/json", empty.into())
        } else {
            let moved = "text/plain\r\nLocation: /moved/api/v1/query_range";
            (307, moved, String::new())
        }
    });
    let out = run(base(&same.url).args([
        "--since",
        "2026-11-01T03:00:00Z",
        "--until",
        "2026-11-01T04:00:00Z",
    ]));
    // No data at all is its own error; what matters is where the query went.
    assert_eq!(out.code, 4, "{}", out.stderr);
    let requests = same.requests.lock().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("POST /moved/api/v1/query_range") && r.contains("query=")),
        "the redirect was followed with the form: {requests:?}"
    );
}

/// A Prometheus answer with one series per entry of `series` (labels JSON, points), every
/// point given as (unix seconds, value text).
/// The hour billed by the tests whose scripted answers carry points, and its end (unix
/// seconds), the one evaluation time of their queries.
const ONE_HOUR: [&str; 4] = [
    "--since",
    "2026-11-01T03:00:00Z",
    "--until",
    "2026-11-01T04:00:00Z",
];

fn one_hour_end() -> i64 {
    chrono::DateTime::parse_from_rfc3339(ONE_HOUR[3])
        .unwrap()
        .timestamp()
}

/// Whether a request is the second half of a CPU query (queries::Half): `namespace!~"…"`,
/// form-encoded. A scripted answer is for one half; both halves answering it would be two
/// series for one namespace.
fn second_half(request: &str) -> bool {
    request.contains("namespace%21%7E%22")
}

/// The answers of the queries about the store's time (queries::scrape_times,
/// queries::newest_samples, queries::target_times and queries::targets_before), for a store that holds everything through `end` and after,
/// scraped every 30 s at 7 s past; `None` for any other request. Scripted servers answer them
/// first, so that their other answers are judged.
fn time_answer(request: &str, end: i64) -> Option<String> {
    // queries::targets_before: no kube-state-metrics target wrote before the span (the targets
    // are then read from their times alone).
    if request.contains("count+by+%28instance%29") {
        return Some(matrix(&[]));
    }
    if request.contains("timestamp") {
        let sources = [
            "kube-state-metrics",
            "kube_pod_status_phase",
            "kube_pod_container_resource_requests",
            "cadvisor",
        ]
        .map(|s| format!(r#"{{"source":"{s}"}}"#));
        let fresh = (end + 600).to_string();
        let point = [(end, fresh.as_str())];
        let series: Vec<(&str, &[(i64, &str)])> =
            sources.iter().map(|l| (l.as_str(), &point[..])).collect();
        return Some(matrix(&series));
    }
    if request.starts_with("POST /api/v1/query ") && request.contains("kube-system") {
        let values: Vec<String> = (0..)
            .map(|k| end - 7200 + 7 + 30 * k)
            .take_while(|t| *t < end + 900)
            .map(|t| format!("[{t},\"1\"]"))
            .collect();
        return Some(format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"namespace":"kube-system","phase":"Active"}},"values":[{}]}}]}}}}"#,
            values.join(",")
        ));
    }
    None
}

/// The namespaces query's answer (queries::namespace_samples): team-a's phase series, `n`
/// samples in the hour ending at `end`.
fn namespace_counts(end: i64, n: &str) -> String {
    matrix(&[(
        r#"{"namespace":"team-a","phase":"Active","instance":"ksm:8080"}"#,
        &[(end, n)],
    )])
}

fn matrix(series: &[(&str, &[(i64, &str)])]) -> String {
    let result: Vec<String> = series
        .iter()
        .map(|(labels, points)| {
            let values: Vec<String> = points
                .iter()
                .map(|(t, v)| format!("[{t},\"{v}\"]"))
                .collect();
            format!(r#"{{"metric":{labels},"values":[{}]}}"#, values.join(","))
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
        result.join(",")
    )
}

/// Answers that would once have been billed silently wrong (exit 0) now fail the hour with a
/// clear error: a huge value, the same series twice, points off the requested steps, and a
/// namespace label that is not a namespace name.
#[test]
fn answers_that_would_bill_wrong_fail_the_hour() {
    let end = one_hour_end();
    // The namespace query (kube_namespace_status_phase) lists the namespaces with their sample
    // counts; every other query gets the answer under test.
    let ns = r#"{"namespace":"team-a"}"#;
    let count = namespace_counts(end, "120");
    let cases: Vec<(String, &[&str])> = vec![
        (
            matrix(&[(ns, &[(end, "1e305")])]),
            &["1e305", "over 1e9 per hour"],
        ),
        (
            matrix(&[(ns, &[(end, "1")]), (ns, &[(end, "1")])]),
            &[
                "two series with the same labels",
                "bill the namespace twice",
            ],
        ),
        (
            matrix(&[(ns, &[(end + 1, "1")])]),
            &["2026-11-01T04:00:01Z", "not one of the evaluation times"],
        ),
        (
            matrix(&[(r#"{"namespace":"a\"b\nc"}"#, &[(end, "1")])]),
            &["not a Kubernetes namespace name"],
        ),
        // One more label than the query groups by: two series, one namespace.
        (
            matrix(&[
                (ns, &[(end, "1")]),
                (
                    r#"{"namespace":"team-a","prometheus_replica":"b"}"#,
                    &[(end, "1")],
                ),
            ]),
            &["with the label \"prometheus_replica\"", "added up"],
        ),
        // An instant vector's `value` inside a matrix: no `values`, once read as no points.
        (
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{ns},"value":[{end},"1"]}}]}}}}"#
            ),
            &["not a Prometheus answer", "unknown field `value`"],
        ),
        (
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{ns}}}]}}}}"#
            ),
            &["not a Prometheus answer", "missing field `values`"],
        ),
        (
            r#"{"status":"success","isPartial":true,"data":{"resultType":"matrix","result":[]}}"#
                .to_string(),
            &["partial data", "isPartial"],
        ),
    ];
    for (answer, says) in cases {
        let (count, answer) = (count.clone(), answer);
        let server = routed_http(move |request| {
            if let Some(time) = time_answer(request, end) {
                (200, "application/json", time)
            } else if request.contains("kube_namespace_status_phase") {
                (200, "application/json", count.clone())
            } else if second_half(request) {
                (200, "application/json", matrix(&[]))
            } else {
                (200, "application/json", answer.clone())
            }
        });
        let out = run(base(&server.url)
            .args(["--scrape-interval", "30s"])
            .args(ONE_HOUR));
        assert_fails(&out, 4, says);
    }
}

/// Two clusters in one store make other queries fail first (Prometheus refuses the storage
/// join: the same PVC twice), and that failure cancels the namespaces' answer the clusters are
/// judged from (here its first read is refused). The run still says what is wrong: the
/// clusters, with the selector to set, not the join.
#[test]
fn mixed_clusters_are_the_news_when_another_query_fails_first() {
    let end = one_hour_end();
    let clusters = matrix(&[
        (
            r#"{"namespace":"team-a","phase":"Active","cluster":"east"}"#,
            &[(end, "120")],
        ),
        (
            r#"{"namespace":"team-a","phase":"Active","cluster":"west"}"#,
            &[(end, "120")],
        ),
    ]);
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let server = routed_http(move |request| {
        if let Some(time) = time_answer(request, end) {
            return (200, "application/json", time);
        }
        // The data labels' read names the families by `__name__`: nothing to say.
        if request.contains("__name__") {
            return (200, "application/json", matrix(&[]));
        }
        if request.contains("kube_namespace_status_phase") {
            if reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                let refused = r#"{"status":"error","errorType":"bad_data","error":"refused once"}"#;
                return (400, "application/json", refused.into());
            }
            (200, "application/json", clusters.clone())
        } else if request.contains("kube_persistentvolumeclaim") {
            let refused = r#"{"status":"error","errorType":"execution","error":"found duplicate series for the match group"}"#;
            (422, "application/json", refused.into())
        } else {
            (200, "application/json", matrix(&[]))
        }
    });
    let out = run(base(&server.url)
        .args(["--scrape-interval", "30s"])
        .args(ONE_HOUR));
    assert_fails(
        &out,
        4,
        &[
            r#"2 clusters (label cluster: "east", "west")"#,
            r#"--prometheus-selector 'cluster="east"'"#,
        ],
    );
}

/// The fallen counters' raw samples are one answer; when it is over the answer limit, their
/// namespaces are read with PromQL's case analysis instead and the run still bills them, once:
/// the steady form's answer for them is dropped.
#[test]
fn fallen_counters_over_the_answer_limit_are_read_with_promql() {
    let end = one_hour_end();
    let ns = r#"{"namespace":"team-a"}"#;
    let answer = |v: &str| matrix(&[(ns, &[(end, v)])]);
    let count = namespace_counts(end, "120");
    let (fell, steady, exact) = (answer("1"), answer("9"), answer("0.25"));
    // Valid JSON, 1.5 MiB: refused for its size before it is read.
    let samples = format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[]}},"pad":"{}"}}"#,
        "x".repeat(1536 * 1024)
    );
    let server = routed_http(move |request| {
        let body = if let Some(time) = time_answer(request, end) {
            time
        } else if request.starts_with("POST /api/v1/query ") {
            samples.clone()
        } else if request.contains("kube_namespace_status_phase") {
            count.clone()
        } else if request.contains("increase") {
            exact.clone()
        } else if request.contains("resets") {
            fell.clone()
        } else if second_half(request) {
            matrix(&[])
        } else if request.contains("last_over_time") {
            steady.clone()
        } else {
            matrix(&[])
        };
        (200, "application/json", body)
    });
    let out = run(base(&server.url)
        .args(["--scrape-interval", "30s", "--cpu-basis", "usage"])
        .args(["--prometheus-max-response-mib", "1"])
        .args(ONE_HOUR));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("reading the fallen counters with PromQL instead")
            && out
                .stderr
                .contains("larger than --prometheus-max-response-mib"),
        "{}",
        out.stderr
    );
    let messages: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let cpu: Vec<f64> = messages
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["payload"].as_array().unwrap())
        .filter(|e| e["external_id"] == "synth-01_team-a")
        .map(|e| e["consumption"]["cpu"].as_f64().unwrap())
        .collect();
    assert_eq!(cpu, [0.25]);
}

/// The system namespaces are never billed by accident: an empty exclusion list is refused,
/// `none` says "bill everything" explicitly.
#[test]
fn an_empty_exclusion_list_is_refused() {
    let out = run(base("http://127.0.0.1:9").env("EXCLUDE_NAMESPACES", ""));
    assert_fails(&out, 2, &["--exclude-namespaces", "`none`"]);
    let out = run(base("http://127.0.0.1:9")
        .env("EXCLUDE_NAMESPACES", "none")
        .arg("--check-config"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("every namespace is billed"),
        "{}",
        out.stdout
    );
    let out = run(bin().args([
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--dry-run",
        "--cluster-name",
        "prod\n01",
    ]));
    assert_fails(&out, 2, &["--cluster-name"]);
}

/// Values that `--check-config` once accepted and a run then failed on late (librdkafka's
/// limit), or that would be resolved away in a URL path (the self-metrics push), or that let
/// a run's plan grow with the checkpoint's age, are usage errors.
#[test]
fn values_that_fail_late_or_escape_a_path_are_usage_errors() {
    let check = |extra: &[&str]| {
        run(bin()
            .args(["--prometheus-url", "http://127.0.0.1:9", "--dry-run"])
            .arg("--check-config")
            .args(extra))
    };
    for name in ["..", ".", ".hidden", "trailing-"] {
        let out = check(&["--cluster-name", name]);
        assert_fails(&out, 2, &["--cluster-name", "beginning and ending"]);
    }
    let out = check(&["--cluster-name", "c", "--max-message-bytes", "2000000000"]);
    assert_fails(&out, 2, &["--max-message-bytes", "999934464"]);
    let out = check(&["--cluster-name", "c", "--max-hours-per-run", "100000"]);
    assert_fails(&out, 2, &["--max-hours-per-run", "at most 8784"]);
    let ok = check(&["--cluster-name", "c", "--max-message-bytes", "999934464"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

/// A header value is a credential: no usage error prints it, nor the fragment after a comma in
/// PROMETHEUS_HEADERS, and a CR/LF in a value is refused.
#[test]
fn header_values_never_appear_in_usage_errors() {
    let check = |cmd: &mut std::process::Command| {
        run(cmd
            .args([
                "--prometheus-url",
                "http://127.0.0.1:9",
                "--cluster-name",
                "c",
            ])
            .args(["--dry-run", "--check-config"]))
    };
    let out = check(bin().args(["--prometheus-header", "Authorization=Bearer SECRET-1\r\n"]));
    let line = assert_fails(&out, 2, &["Authorization=<hidden>", "control character"]);
    assert!(!out.stderr.contains("SECRET-1"), "{line}");
    let out = check(bin().env("PROMETHEUS_HEADERS", "Authorization=Basic SECRET-2,PART-3"));
    let line = assert_fails(&out, 2, &["item 2", "NAME=VALUE"]);
    assert!(
        !out.stderr.contains("SECRET-2") && !out.stderr.contains("PART-3"),
        "{line}"
    );
}

/// A token in the URL's query string (`?access_token=…`) is never printed: errors show the
/// parameter's name only.
#[test]
fn a_token_in_the_url_query_is_never_printed() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/?access_token=TOKEN-QUERY-77");
    let out = run(&mut backfill(&url));
    let line = assert_fails(&out, 4, &["could not reach Prometheus", "access_token=***"]);
    assert!(!out.stderr.contains("TOKEN-QUERY-77"), "{line}");
    let out = run(bin()
        .args(["--prometheus-url", "ftp://x/?access_token=TOKEN-QUERY-77"])
        .args(["--cluster-name", "c", "--dry-run"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("TOKEN-QUERY-77"), "{}", out.stderr);
}

/// `Retry-After` on 429/503 is honoured (the wait is at least what the server asked), and one
/// beyond the run's budget stops the run at once instead of sleeping through the next run.
#[test]
fn retry_after_is_honoured_within_the_budget() {
    let busy = |after: &str| {
        (
            503,
            Box::leak(format!("text/plain\r\nRetry-After: {after}").into_boxed_str()) as &str,
            "busy".to_string(),
        )
    };
    let server = scripted_http(vec![busy("3"), busy("3")]);
    let started = std::time::Instant::now();
    let out = run(base(&server.url).env("PROMETHEUS_RETRIES", "1").args([
        "--since",
        "2026-11-01T03:00:00Z",
        "--until",
        "2026-11-01T04:00:00Z",
    ]));
    assert_fails(&out, 4, &["HTTP 503", "retry after 3s", "[retryable"]);
    let asked = tries(&server);
    assert!(asked.values().all(|n| *n <= 2), "{asked:?}");
    assert_eq!(asked.values().max(), Some(&2), "{asked:?}");
    // The default backoff before the first retry is 1 s; the server asked for 3.
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));

    let server = scripted_http(vec![busy("3600")]);
    let out = run(base(&server.url).env("PROMETHEUS_RETRIES", "3").args([
        "--since",
        "2026-11-01T03:00:00Z",
        "--until",
        "2026-11-01T04:00:00Z",
    ]));
    assert_fails(&out, 4, &["retry after 3600s"]);
    let asked = tries(&server);
    assert!(asked.values().all(|n| *n == 1), "not retried: {asked:?}");
}

/// Smaller input defects: each gets its own error, exit code and retry class.
#[test]
fn token_json_and_settle_delay_errors_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "line-one\nline-two\n").unwrap();
    let out = run(base("http://127.0.0.1:9")
        .arg("--prometheus-bearer-token-file")
        .arg(&token)
        .args([
            "--since",
            "2026-11-01T03:00:00Z",
            "--until",
            "2026-11-01T04:00:00Z",
        ]));
    assert_fails(
        &out,
        4,
        &["bearer token", "more than one line", "[not retryable"],
    );

    let server = scripted_http(vec![(
        200,
        "application/json",
        r#"{"status":"success","data":{"resultType":"mat"#.into(),
    )]);
    let out = run(base(&server.url).args([
        "--since",
        "2026-11-01T03:00:00Z",
        "--until",
        "2026-11-01T04:00:00Z",
    ]));
    let line = assert_fails(&out, 4, &["cut off or malformed", "[retryable"]);
    assert!(!line.contains("API root"), "{line}");

    let out = run(base("http://127.0.0.1:9").args(["--settle-delay", "100y"]));
    assert_fails(&out, 2, &["--settle-delay", "at most 7d"]);

    // A parser error is one JSON event when the logs are JSON.
    let out = run(bin().env("LOG_FORMAT", "json").arg("--no-such-flag"));
    assert_eq!(out.code, 2);
    let event: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(event["level"], "ERROR");
    assert!(
        event["error"].as_str().unwrap().contains("--no-such-flag"),
        "{event}"
    );
}

/// An answer over the size limit fails the run with advice instead of exhausting memory.
#[test]
fn an_oversized_answer_is_refused_with_advice() {
    let big = format!(r#"{{"status":"success","x":"{}"}}"#, "a".repeat(2 << 20));
    let server = scripted_http(vec![(200, "application/json", big)]);
    let out = run(base(&server.url)
        .args(["--prometheus-max-response-mib", "1"])
        .args(ONE_HOUR));
    assert_fails(
        &out,
        4,
        &[
            "larger than --prometheus-max-response-mib (1 MiB)",
            "--hours-per-query",
        ],
    );
}

/// Thanos parameters on every query (by default and for thanos/mimir), none for plain
/// Prometheus; Mimir without its tenant header is a usage error.
#[test]
fn the_flavor_decides_the_query_parameters() {
    let thanos = [
        "dedup=true",
        "partial_response=false",
        "max_source_resolution=0s",
    ];
    let sent = |flavor: &str, extra: &[&str]| {
        let server = scripted_http(vec![(503, "text/plain", "down".into())]);
        let out = run(base(&server.url)
            .args(["--prometheus-flavor", flavor])
            .args(extra)
            .args([
                "--since",
                "2026-11-01T03:00:00Z",
                "--until",
                "2026-11-01T04:00:00Z",
            ]));
        assert_eq!(out.code, 4, "{}", out.stderr);
        server.requests.lock().unwrap()[0].clone()
    };
    for flavor in ["auto", "thanos"] {
        let request = sent(flavor, &[]);
        for p in thanos {
            assert!(request.contains(p), "{flavor}: {p} not in {request}");
        }
    }
    let request = sent("prometheus", &[]);
    assert!(thanos.iter().all(|p| !request.contains(p)), "{request}");
    let request = sent("mimir", &["--prometheus-header", "X-Scope-OrgID=tenant-a"]);
    assert!(
        request
            .to_ascii_lowercase()
            .contains("x-scope-orgid: tenant-a"),
        "{request}"
    );
    assert!(request.contains("dedup=true"), "{request}");

    let out = run(base("http://127.0.0.1:9").args(["--prometheus-flavor", "mimir"]));
    assert_fails(&out, 2, &["X-Scope-OrgID"]);
}

/// The runbook's commands on a file checkpoint: show, a Go-job value refused with the commands
/// that fix it, set forward, refusal backwards without --force, and never into the future.
#[test]
fn checkpoint_commands_show_and_move_it_deliberately() {
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let cmd = |args: &[&str]| {
        run(bin()
            .arg("checkpoint")
            .args(args)
            .arg("--checkpoint-file")
            .arg(&cp)
            .args(["--now", "2026-11-22T13:20:00Z"]))
    };
    let out = cmd(&["show"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("none yet"), "{}", out.stdout);

    // The Go job's wall-clock value: named, with both candidate hours and the commands.
    std::fs::write(&cp, "2026-11-22T10:17:42.123+00:00\n").unwrap();
    let out = cmd(&["show"]);
    let line = assert_fails(
        &out,
        3,
        &[
            "Go CronJob",
            "checkpoint set --to 2026-11-22T10:00:00Z",
            "--to 2026-11-22T09:00:00Z",
        ],
    );
    assert!(line.contains("2026-11-22T10:17:42.123+00:00"), "{line}");

    let out = cmd(&["set", "--to", "2026-11-22T10:00:00Z"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap(),
        "2026-11-22T10:00:00Z\n"
    );
    assert!(
        out.stderr.contains("checkpoint moved by hand"),
        "{}",
        out.stderr
    );
    let out = cmd(&["show"]);
    assert!(
        out.stdout
            .contains("would bill 3 hours, [2026-11-22T10:00:00Z, 2026-11-22T13:00:00Z)")
            && out.stdout.contains("lag:         3h 20m"),
        "{}",
        out.stdout
    );

    let out = cmd(&["set", "--to", "2026-11-22T08:00:00Z"]);
    assert_fails(&out, 3, &["backwards", "--force"]);
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap(),
        "2026-11-22T10:00:00Z\n"
    );
    let out = cmd(&["set", "--to", "2026-11-22T08:00:00Z", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap(),
        "2026-11-22T08:00:00Z\n"
    );

    let out = cmd(&["set", "--to", "2026-11-22T14:00:00Z"]);
    assert_fails(&out, 2, &["after the newest settled hour"]);
    let out = cmd(&["set", "--to", "2026-11-22T10:30:00Z"]);
    assert_fails(&out, 2, &["--to"]);
}

/// The runbook for an hour Prometheus never recorded: every run stops there (exit 4) with the
/// command that moves past it; after that command the next run bills on.
#[test]
fn a_no_data_hour_is_passed_with_the_runbook_command() {
    let p = standard();
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let gap = p.dataset.first_truth_hour - 2 * 3600; // one hour before the data starts
    std::fs::write(&cp, format!("{}\n", rfc3339(gap))).unwrap();
    let now = rfc3339(p.dataset.first_truth_hour + 3 * 3600 + 600);
    let scheduled = || {
        run(bin()
            .args([
                "--prometheus-url",
                &p.url,
                "--cluster-name",
                "synth-01",
                "--dry-run",
            ])
            .args(["--now", &now])
            .arg("--checkpoint-file")
            .arg(&cp))
    };
    let command = format!("checkpoint set --to {}", rfc3339(gap + 3600));
    let out = scheduled();
    assert_fails(&out, 4, &["no kube-state-metrics data", &command]);

    let out = run(bin()
        .args(command.split(' ').collect::<Vec<_>>())
        .arg("--checkpoint-file")
        .arg(&cp)
        .args(["--now", &now]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = scheduled();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let messages: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        messages.as_array().unwrap().len(),
        4,
        "the data's first hour and three more"
    );
}
