//! `consumption-metrics audit` against the real broker behind the real mTLS terminator: a clean
//! range is reported complete, and every way an hour can be wrong on the topic (never sent,
//! sent twice, sent twice with different content, a part missing, a message we would not
//! produce) is reported as such, with its own exit code. `--recompute` compares the topic with
//! Prometheus per namespace and dimension.

mod common;

use std::sync::OnceLock;

use common::kafka::{RawRecord, TestKafka, start_kafka};
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

/// `audit --output json` over [since, until), which must exit with `code`: the report.
fn audit_json(topic: &str, since: &str, until: &str, code: i32) -> Value {
    let out = audit(topic, since, until, &["--output", "json"]);
    assert_eq!(out.code, code, "{}\n{}", out.stdout, out.stderr);
    json(&out)
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
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T06:00:00Z", &[]);

    // A clean range.
    let r = audit_json(topic, "2026-11-01T02:00:00Z", "2026-11-01T06:00:00Z", 0);
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
    assert_eq!(
        r["not_read"],
        serde_json::json!([]),
        "tansu positions at 0: {r}"
    );

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

    let r = audit_json(topic, "2026-11-01T02:00:00Z", "2026-11-01T07:00:00Z", 6);
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
    let r = audit_json(topic, "2026-11-01T02:00:00Z", "2026-11-01T04:00:00Z", 6);
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

/// The published record of `start` (part 1), as consumed: (headers, body).
fn published(topic: &str, start: &str) -> (Vec<(String, String)>, KafkaMessage) {
    let all = kafka().consume(topic, 100, std::time::Duration::from_secs(5));
    let key = format!("synth-01/{start}");
    let m = all.iter().find(|m| m.key == key).expect("a published hour");
    (
        m.headers.clone(),
        serde_json::from_slice(&m.payload).unwrap(),
    )
}

/// Part `part` of `parts` of the hour `start`, made from `template` under our key with our id:
/// everything a forger can get right, and `change` applied.
fn forged(
    start: &str,
    part: usize,
    parts: usize,
    template: &KafkaMessage,
    change: impl Fn(&mut KafkaMessage),
) -> RawRecord {
    let id = message_id("synth-01", &hour(start), part - 1);
    let mut m = template.clone();
    m.header.message_id = id.clone();
    m.header.consumption_start_ts = format!("{}.000000+00:00", &start[..19]);
    change(&mut m);
    (
        format!("synth-01/{start}"),
        vec![
            ("message_id".into(), id),
            ("part".into(), format!("{part}/{parts}")),
        ],
        serde_json::to_vec(&m).unwrap(),
    )
}

/// The billing side reads by offset: a conflicting copy written later with an old record time
/// (a replay, MirrorMaker keeping original times, a producer clock behind) is read and
/// reported, not skipped by its timestamp.
#[test]
fn a_copy_with_an_old_record_time_is_read() {
    let k = kafka();
    let topic = "mcmp-audit-old-time";
    k.create_topic(topic);
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T04:00:00Z", &[]);
    let early = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:30:00Z")
        .unwrap()
        .timestamp_millis();
    let h3 = hour("2026-11-01T03:00:00Z");
    let id3 = message_id("synth-01", &h3, 0);
    let body3 = altered(topic, "2026-11-01T03:00:00Z");
    k.produce(
        topic,
        "synth-01/2026-11-01T03:00:00Z",
        &[("message_id", &id3), ("part", "1/1")],
        &body3,
        Some(early),
    );
    for extra in [&[][..], &["--from-earliest"][..]] {
        let out = audit(
            topic,
            "2026-11-01T02:00:00Z",
            "2026-11-01T04:00:00Z",
            &[extra, &["--output", "json"]].concat(),
        );
        assert_eq!(out.code, 6, "{extra:?}: {}\n{}", out.stdout, out.stderr);
        let r = json(&out);
        assert_eq!(
            statuses(&r),
            pairs(&[("02:00", "complete"), ("03:00", "conflicting")]),
            "{extra:?}: {r}"
        );
        assert!(
            r["hours"][1]["findings"]
                .to_string()
                .contains("DIFFERENT content"),
            "{r}"
        );
        assert_eq!(r["not_read"], serde_json::json!([]), "{r}");
    }
}

/// A message under our key with our id that this job would never write is foreign, not
/// complete: the same contract check a run makes before sending, this job's header fields, and
/// each namespace once across the parts of an hour.
#[test]
fn a_message_breaking_the_contract_is_foreign() {
    let k = kafka();
    let topic = "mcmp-audit-contract";
    k.create_topic(topic);
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z", &[]);
    let (_, template) = published(topic, "2026-11-01T02:00:00Z");
    assert!(template.payload.len() >= 3, "{template:?}");
    let cases: [(&str, &str); 6] = [
        ("2026-11-01T03:00:00Z", "cpu is -1"),
        ("2026-11-01T04:00:00Z", "is not <cluster>_<namespace>"),
        ("2026-11-01T05:00:00Z", "gpu is 1e300"),
        (
            "2026-11-01T06:00:00Z",
            "is not this job's \\\"OPENSHIFT\\\" (--service-name)",
        ),
        ("2026-11-01T07:00:00Z", "listed twice"),
        ("2026-11-01T08:00:00Z", "parts 1 and 2 overlap"),
    ];
    let records = vec![
        forged(cases[0].0, 1, 1, &template, |m| {
            m.payload[0].consumption.cpu = -1.0
        }),
        forged(cases[1].0, 1, 1, &template, |m| {
            m.payload[0].external_id = "synth-01_Team A".into()
        }),
        forged(cases[2].0, 1, 1, &template, |m| {
            m.payload[1].consumption.gpu = 1e300
        }),
        forged(cases[3].0, 1, 1, &template, |m| {
            m.header.service_name = "OPENSTACK".into()
        }),
        forged(cases[4].0, 1, 1, &template, |m| {
            let first = m.payload[0].clone();
            m.payload.insert(1, first);
        }),
        // Each part in order and valid alone; the second repeats the first's last namespace.
        forged(cases[5].0, 1, 2, &template, |m| m.payload.truncate(2)),
        forged(cases[5].0, 2, 2, &template, |m| {
            m.payload.remove(0);
        }),
    ];
    k.produce_many(topic, &records);
    let r = audit_json(topic, "2026-11-01T03:00:00Z", "2026-11-01T09:00:00Z", 6);
    for (i, (start, says)) in cases.iter().enumerate() {
        let h = &r["hours"][i];
        assert_eq!(h["hour"], *start);
        assert_eq!(h["status"], "foreign", "{h}");
        assert!(h["findings"].to_string().contains(says), "{says:?} in {h}");
    }
}

/// A flood of junk under our key prefix keeps ten lines per hour (and ten unattributed keys)
/// and counts the rest: the audit's memory and report stay small whatever is written there.
#[test]
fn junk_under_our_key_is_bounded_and_counted() {
    let k = kafka();
    let topic = "mcmp-audit-junk";
    k.create_topic(topic);
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z", &[]);
    let mut junk = Vec::new();
    for i in 0..300 {
        junk.push((
            "synth-01/2026-11-01T02:00:00Z".to_string(),
            vec![],
            format!("junk {i}").into_bytes(),
        ));
        junk.push((format!("synth-01/junk-{i}"), vec![], b"{}".to_vec()));
    }
    k.produce_many(topic, &junk);
    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T03:00:00Z",
        &["--output", "json"],
    );
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    let h = &r["hours"][0];
    assert_eq!(h["status"], "foreign", "{h}");
    assert_eq!(h["messages"], 301, "{h}");
    assert_eq!(h["findings"].as_array().unwrap().len(), 10, "{h}");
    assert_eq!(h["findings_left_out"], 290, "{h}");
    assert_eq!(r["unattributed"].as_array().unwrap().len(), 10, "{r}");
    assert_eq!(r["unattributed_left_out"], 290, "{r}");
    assert!(out.stdout.len() < 20_000, "{} bytes", out.stdout.len());

    let text = audit(topic, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z", &[]);
    assert!(
        text.stdout
            .contains("and 290 more foreign records, not listed")
            && text
                .stdout
                .contains("unattributed: and 290 more, not listed"),
        "{}",
        text.stdout
    );
}

/// The billing side drops duplicates by `message_id`, not by key: a copy of one of our ids
/// under another key is reported, harmless when equal, an alarm when it differs or stands
/// alone.
#[test]
fn our_id_under_another_key_is_reported() {
    let k = kafka();
    let topic = "mcmp-audit-other-key";
    k.create_topic(topic);
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T04:00:00Z", &[]);
    let all = k.consume(topic, 2, std::time::Duration::from_secs(5));
    let original = |start: &str| {
        let key = format!("synth-01/{start}");
        all.iter()
            .find(|m| m.key == key)
            .expect("a published hour")
            .clone()
    };
    let h2 = original("2026-11-01T02:00:00Z");
    let h3 = original("2026-11-01T03:00:00Z");
    let (_, template) = published(topic, "2026-11-01T02:00:00Z");
    let (_, lone_headers, lone) = forged("2026-11-01T04:00:00Z", 1, 1, &template, |_| {});
    k.produce_many(
        topic,
        &[
            (
                "mirror/synth-01/2026-11-01T02:00:00Z".into(),
                h2.headers.clone(),
                h2.payload.clone(),
            ),
            (
                "replay".into(),
                h3.headers.clone(),
                altered(topic, "2026-11-01T03:00:00Z"),
            ),
            ("someone-else".into(), lone_headers, lone),
        ],
    );
    let r = audit_json(topic, "2026-11-01T02:00:00Z", "2026-11-01T05:00:00Z", 6);
    assert_eq!(
        statuses(&r),
        pairs(&[
            ("02:00", "duplicated"),
            ("03:00", "conflicting"),
            ("04:00", "conflicting")
        ]),
        "{r}"
    );
    let findings = |i: usize| r["hours"][i]["findings"].to_string();
    assert!(
        findings(0).contains(
            "under another key \\\"mirror/synth-01/2026-11-01T02:00:00Z\\\" with equal content"
        ),
        "{}",
        findings(0)
    );
    assert!(
        findings(1).contains("under another key \\\"replay\\\" with DIFFERENT content"),
        "{}",
        findings(1)
    );
    assert!(
        findings(2).contains("no copy under this hour's key"),
        "{}",
        findings(2)
    );
}

/// The audit reads the CloudEvents attributes back: as a run writes them the hour is
/// complete; a copy whose attributes say another source or time is not ours.
#[test]
fn cloudevents_attributes_are_audited() {
    let k = kafka();
    let topic = "mcmp-audit-cloudevents";
    k.create_topic(topic);
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T04:00:00Z", &[]);
    let all = k.consume(topic, 2, std::time::Duration::from_secs(5));
    let h3 = all
        .iter()
        .find(|m| m.key == "synth-01/2026-11-01T03:00:00Z")
        .unwrap();
    assert!(
        h3.headers.iter().any(|(k, _)| k == "ce_id"),
        "{:?}",
        h3.headers
    );
    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T04:00:00Z",
        &["--output", "json"],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut forged = h3.headers.clone();
    for (k, v) in &mut forged {
        if k == "ce_source" {
            *v = "/consumption-metrics/synth-02".into();
        }
    }
    k.produce_many(topic, &[(h3.key.clone(), forged, h3.payload.clone())]);
    let r = audit_json(topic, "2026-11-01T02:00:00Z", "2026-11-01T04:00:00Z", 6);
    assert_eq!(
        statuses(&r),
        pairs(&[("02:00", "complete"), ("03:00", "foreign")])
    );
    assert!(
        r["hours"][1]["findings"]
            .to_string()
            .contains("CloudEvents header ce_source is \\\"/consumption-metrics/synth-02\\\""),
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

/// A central store that lags (issue "Bill an hour only when the store holds all of it"):
/// VictoriaMetrics holds the cluster's data only up to 04:40 when the 05:10 run starts. The
/// scheduled run publishes 03:00, waits for 04:00 (exit 0, checkpoint at 04:00, one log line
/// saying so); the late samples then arrive (VictoriaMetrics' import takes them, as remote
/// write delivers them), and the next run bills 04:00 with the namespace created at 04:45.
/// The audit finds each hour once, and equal to what the complete store recomputes.
#[test]
fn a_lagging_hour_is_billed_by_the_next_run_once_its_data_arrives() {
    use consumption_metrics_synth::scenario::Options;
    let k = kafka();
    let topic = "mcmp-audit-lagging";
    k.create_topic(topic);
    let opts = Options {
        hours: 6,
        random_namespaces: 4,
        seed: 51,
        late_batch: Some(4.75),
        ..Options::default()
    };
    let cut = opts.start + 4 * 3600 + 40 * 60;
    let p = common::start_victoria_metrics(
        "lagging-scheduled",
        &Options {
            stored_until: Some(4.0 + 40.0 / 60.0),
            ..opts.clone()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let full = consumption_metrics_synth::write_dataset(&opts, &dir.path().join("full")).unwrap();
    let cp = dir.path().join("cp");
    std::fs::write(&cp, "2026-11-01T03:00:00Z\n").unwrap();
    let scheduled = |now: &str| {
        run(bin()
            .args(["--prometheus-url", &p.url, "--cluster-name", "synth-01"])
            .args(["--now", now])
            .arg("--checkpoint-file")
            .arg(&cp)
            .args(k.flags(topic)))
    };
    let checkpoint = || std::fs::read_to_string(&cp).unwrap().trim().to_string();

    let out = scheduled("2026-11-01T05:10:00Z");
    assert_eq!(
        out.code, 0,
        "a routine lag is not a failed Job: {}",
        out.stderr
    );
    assert_eq!(checkpoint(), "2026-11-01T04:00:00Z");
    assert!(
        out.stderr.contains("the next run bills it")
            && out
                .stderr
                .contains("hour=[2026-11-01T04:00:00Z, 2026-11-01T05:00:00Z)")
            && out.stderr.contains("newest=2026-11-01T04:39:"),
        "{}",
        out.stderr
    );

    common::import_victoria_metrics(&p.url, dir.path(), &full.openmetrics, cut);
    let out = scheduled("2026-11-01T05:20:00Z");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(checkpoint(), "2026-11-01T05:00:00Z");

    let out = audit(
        topic,
        "2026-11-01T03:00:00Z",
        "2026-11-01T05:00:00Z",
        &[
            "--recompute",
            "--prometheus-url",
            &p.url,
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert_eq!(r["recomputed"], true);
    assert!(statuses(&r).iter().all(|(_, s)| s == "complete"), "{r}");
    // The namespace created in the 20 minutes the store did not hold yet is in the hour.
    let (_, message) = published(topic, "2026-11-01T04:00:00Z");
    assert!(
        message
            .payload
            .iter()
            .any(|e| e.external_id == "synth-01_team-late"),
        "{:?}",
        message.payload
    );
}

/// A copy of our record whose *last* `message_id` header differs is another event to
/// consumers that keep the last copy (Java's Headers.lastHeader): it is foreign, named, not a
/// harmless duplicate (undecodable values: the unit tests of `check_identity_headers`).
#[test]
fn repeated_or_undecodable_identity_headers_are_foreign() {
    let k = kafka();
    let topic = "mcmp-audit-repeated-header";
    k.create_topic(topic);
    publish(topic, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z", &[]);
    let (headers, message) = published(topic, "2026-11-01T02:00:00Z");
    let body = serde_json::to_vec(&message).unwrap();
    let mut repeated: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    repeated.push(("message_id", "another-event"));
    k.produce(
        topic,
        "synth-01/2026-11-01T02:00:00Z",
        &repeated,
        &body,
        None,
    );
    let out = audit(
        topic,
        "2026-11-01T02:00:00Z",
        "2026-11-01T03:00:00Z",
        &["--output", "json"],
    );
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    let r = json(&out);
    assert_eq!(statuses(&r), pairs(&[("02:00", "foreign")]), "{r}");
    assert!(
        r.to_string()
            .contains("the `message_id` header appears more than once"),
        "{r}"
    );
}
