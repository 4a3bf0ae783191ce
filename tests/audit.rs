//! `consumption-metrics audit` against the real broker behind the real mTLS terminator: a clean
//! range is reported complete, and every way an hour can be wrong on the topic (never sent,
//! sent twice, sent twice with different content, a part missing, a message we would not
//! produce) is reported as such, with its own exit code. `--recompute` compares the topic with
//! Prometheus per namespace and dimension.

mod common;

use std::sync::OnceLock;

use common::kafka::{TestKafka, start_kafka};
use common::{Outcome, bin, run, standard};
use consumption_metrics::message::{IdFormat, KafkaMessage, message_id};
use consumption_metrics::window::HourWindow;
use serde_json::Value;

fn kafka() -> &'static TestKafka {
    static K: OnceLock<TestKafka> = OnceLock::new();
    K.get_or_init(|| start_kafka("audit"))
}

const NOW: &str = "2026-11-02T00:00:00Z";

/// A backfill that publishes [since, until) to `topic`, leaving the checkpoint alone.
fn publish(topic: &str, since: &str, until: &str, tiers: &[&str]) {
    let k = kafka();
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin()
        .args(["--prometheus-url", &standard().url])
        .args(["--cluster-name", "synth-01", "--now", NOW])
        .args(["--since", since, "--until", until])
        .args(tiers)
        .arg("--checkpoint-file")
        .arg(dir.path().join("cp"))
        .args(k.flags(topic)));
    assert_eq!(out.code, 0, "publishing {since}..{until}: {}", out.stderr);
}

fn audit(topic: &str, since: &str, until: &str, extra: &[&str]) -> Outcome {
    run(bin()
        .arg("audit")
        .args(["--cluster-name", "synth-01", "--now", NOW])
        .args(["--since", since, "--until", until])
        .args(extra)
        .args(kafka().flags(topic)))
}

fn json(out: &Outcome) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("audit JSON: {e}\n{}\n{}", out.stdout, out.stderr))
}

/// Hour start → status, from a JSON report.
fn statuses(report: &Value) -> Vec<(String, String)> {
    report["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["hour"].as_str().unwrap()[11..16].to_string(),
                h["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn hour(start: &str) -> HourWindow {
    HourWindow::starting_at(start.parse().unwrap(), "test").unwrap()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A copy of part 1 of a published hour with its first namespace's CPU changed: what a
/// second, differently configured job would send under our id.
fn altered(topic: &str, start: &str) -> Vec<u8> {
    let all = kafka().consume(topic, 100, std::time::Duration::from_secs(5));
    let key = format!("synth-01/{start}");
    let original = all.iter().find(|m| m.key == key).expect("a published hour");
    let mut m: KafkaMessage = serde_json::from_slice(&original.payload).unwrap();
    m.payload[0].consumption.cpu += 1.0;
    serde_json::to_vec(&m).unwrap()
}

#[test]
fn every_way_an_hour_can_be_wrong_is_reported() {
    let k = kafka();
    let topic = "mcmp-audit";
    k.create_topic(topic);
    // Written before the audited range starts (by its record time): positioning by time skips
    // it, though it lies in the partition of an audited hour and would be foreign.
    let early = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:30:00Z")
        .unwrap()
        .timestamp_millis();
    k.produce(
        topic,
        "synth-01/2026-11-01T03:00:00Z",
        &[("message_id", "not-ours"), ("part", "1/1")],
        b"{}",
        Some(early),
    );
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T06:00:00Z", &[]);

    // A clean range.
    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T06:00:00Z",
        &["--output", "json"],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert_eq!(
        statuses(&r),
        pairs(&[
            ("02:00", "complete"),
            ("03:00", "complete"),
            ("04:00", "complete"),
            ("05:00", "complete")
        ])
    );
    assert!(r["unattributed"].as_array().unwrap().is_empty());

    // Hours never published, on either side.
    let out = audit(
        topic,
        "2026-11-01T01:00:00Z",
        "2026-11-01T07:00:00Z",
        &["--output", "json"],
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    let s = statuses(&json(&out));
    assert_eq!(s[0], ("01:00".into(), "missing".into()));
    assert_eq!(s[5], ("06:00".into(), "missing".into()));
    assert!(s[1..5].iter().all(|(_, st)| st == "complete"), "{s:?}");

    // A re-publish (what a crash before the checkpoint causes): same ids, same content.
    publish(topic, "2026-11-01T03:00:00Z", "2026-11-01T04:00:00Z", &[]);
    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T06:00:00Z",
        &["--output", "json"],
    );
    assert_eq!(
        out.code, 0,
        "harmless duplicates keep exit 0: {}",
        out.stdout
    );
    let r = json(&out);
    assert_eq!(statuses(&r)[1], ("03:00".into(), "duplicated".into()));
    assert!(
        r["hours"][1]["findings"][0]
            .as_str()
            .unwrap()
            .contains("equal content"),
        "{r}"
    );

    // Our id with different content; an id we would not give; half of a two-part hour;
    // another cluster's message (ignored); a key of ours that names no hour.
    let h4 = hour("2026-11-01T04:00:00Z");
    let id4 = message_id("synth-01", &h4, 0);
    let body4 = altered(topic, "2026-11-01T04:00:00Z");
    k.produce(
        topic,
        "synth-01/2026-11-01T04:00:00Z",
        &[("message_id", &id4), ("part", "1/1")],
        &body4,
        None,
    );
    k.produce(
        topic,
        "synth-01/2026-11-01T05:00:00Z",
        &[
            ("message_id", "b0b0b0b0-0000-5000-8000-000000000000"),
            ("part", "1/1"),
        ],
        b"{}",
        None,
    );
    let h6 = hour("2026-11-01T06:00:00Z");
    let id6 = message_id("synth-01", &h6, 0);
    let mut part1: KafkaMessage = serde_json::from_slice(&body4).unwrap();
    part1.header.message_id = id6.clone();
    part1.header.consumption_start_ts = "2026-11-01T06:00:00.000000+00:00".into();
    k.produce(
        topic,
        "synth-01/2026-11-01T06:00:00Z",
        &[("message_id", &id6), ("part", "1/2")],
        &serde_json::to_vec(&part1).unwrap(),
        None,
    );
    k.produce(
        topic,
        "synth-02/2026-11-01T02:00:00Z",
        &[("message_id", "x"), ("part", "1/1")],
        b"{}",
        None,
    );
    k.produce(topic, "synth-01/yesterday", &[], b"{}", None);

    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T07:00:00Z",
        &["--output", "json"],
    );
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert_eq!(
        statuses(&r),
        pairs(&[
            ("02:00", "complete"),
            ("03:00", "duplicated"),
            ("04:00", "conflicting"),
            ("05:00", "foreign"),
            ("06:00", "missing"),
        ])
    );
    let findings = |i: usize| r["hours"][i]["findings"].to_string();
    assert!(findings(2).contains("DIFFERENT content"), "{}", findings(2));
    assert!(
        findings(3).contains("is not the id of part 1"),
        "{}",
        findings(3)
    );
    assert!(
        findings(4).contains("parts [2] of 2 missing"),
        "{}",
        findings(4)
    );
    assert_eq!(r["unattributed"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["counts"]["complete"], 1);

    // The same findings as a table for people.
    let out = audit(topic, "2026-11-01T02:00:00Z", "2026-11-01T07:00:00Z", &[]);
    assert_eq!(out.code, 6);
    for expected in [
        "2026-11-01T04:00:00Z   conflicting",
        "2026-11-01T06:00:00Z   missing",
        "unattributed: ",
        "NOT every hour published exactly once and right",
    ] {
        assert!(
            out.stdout.contains(expected),
            "{expected:?} in\n{}",
            out.stdout
        );
    }
}

/// A forged record with our key and id claiming a trillion parts is not ours: the audit
/// reports it and does not allocate for the claim (it once aborted, out of memory).
#[test]
fn a_forged_part_count_is_foreign_not_an_allocation() {
    let k = kafka();
    let topic = "mcmp-audit-forged-parts";
    k.create_topic(topic);
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z", &[]);
    let h3 = hour("2026-11-01T03:00:00Z");
    k.produce(
        topic,
        "synth-01/2026-11-01T03:00:00Z",
        &[
            ("message_id", &message_id("synth-01", &h3, 0)),
            ("part", "1/1000000000000"),
        ],
        b"{}",
        None,
    );
    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T04:00:00Z",
        &["--output", "json"],
    );
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert_eq!(
        statuses(&r),
        pairs(&[("02:00", "complete"), ("03:00", "foreign")])
    );
    assert!(
        r["hours"][1]["findings"]
            .to_string()
            .contains("1/1000000000000"),
        "{r}"
    );
}

#[test]
fn recompute_compares_the_topic_with_prometheus() {
    let k = kafka();
    let topic = "mcmp-audit-recompute";
    k.create_topic(topic);
    // Published without the tier map: RWX volumes of gold and cephfs billed as standard.
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T04:00:00Z", &[]);
    let url = standard().url.clone();

    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T04:00:00Z",
        &["--recompute", "--prometheus-url", &url, "--output", "json"],
    );
    assert_eq!(
        out.code, 0,
        "the same settings recompute the same: {}",
        out.stdout
    );
    assert_eq!(json(&out)["recomputed"], true);

    // With the tier map now: the topic no longer matches what would be billed.
    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T04:00:00Z",
        &[
            "--recompute",
            "--prometheus-url",
            &url,
            "--storage-tier",
            "gold=premium,cephfs=basic",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert!(statuses(&r).iter().all(|(_, s)| s == "differs"), "{r}");
    let f = r["hours"][0]["findings"].to_string();
    assert!(
        f.contains("storage_rwx_standard: topic") && f.contains("storage_rwx_premium: topic"),
        "per namespace and dimension: {f}"
    );
}

/// `--message-id-format legacy`: the Go job's shape, valid against the schema, derived from the
/// hour and part; the audit checks ids in the format it is given and names the other one.
#[test]
fn legacy_message_ids_are_published_and_audited() {
    let k = kafka();
    let topic = "mcmp-audit-legacy";
    k.create_topic(topic);
    let legacy = ["--message-id-format", "legacy"];
    let (since, until) = ("2026-11-01T02:00:00Z", "2026-11-01T04:00:00Z");

    let dry = run(bin()
        .args(["--prometheus-url", &standard().url])
        .args(["--cluster-name", "synth-01", "--now", NOW, "--dry-run"])
        .args(["--since", since, "--until", until])
        .args(legacy));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let messages: Vec<Value> = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(messages.len(), 2);
    let validator = common::schema_validator();
    for (m, start) in messages.iter().zip([since, "2026-11-01T03:00:00Z"]) {
        let errors: Vec<String> = validator.iter_errors(m).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            m["header"]["message_id"],
            IdFormat::Legacy.id("synth-01", &hour(start), 0)
        );
        assert!(
            m["header"]["message_id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("2026-11-01-{}:00:", &start[11..13])),
            "{m}"
        );
    }

    publish(topic, since, until, &legacy);
    let out = audit(
        topic,
        since,
        until,
        &[&legacy[..], &["--output", "json"]].concat(),
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        statuses(&json(&out)),
        pairs(&[("02:00", "complete"), ("03:00", "complete")])
    );

    // Audited as UUIDs, the legacy messages are not ours, and the reason says which flag to use.
    let out = audit(topic, since, until, &["--output", "json"]);
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert!(statuses(&r).iter().all(|(_, s)| s == "foreign"), "{r}");
    assert!(
        r["hours"][0]["findings"]
            .to_string()
            .contains("audit with --message-id-format legacy"),
        "{r}"
    );
}

#[test]
fn audit_needs_a_range_and_the_kafka_settings() {
    let out = run(bin().args(["audit", "--cluster-name", "c"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("audit needs --since and --until"),
        "{}",
        out.stderr
    );
    let out = run(bin().args([
        "audit",
        "--cluster-name",
        "c",
        "--since",
        "2026-11-01T00:00:00Z",
        "--until",
        "2026-11-01T01:00:00Z",
    ]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(
            "audit reads the topic with the publishing settings and needs --kafka-brokers"
        ),
        "{}",
        out.stderr
    );
}
