use super::judge::*;
use super::recompute::*;
use super::record::*;
use super::report::*;
use crate::kafka::cloudevents;
use crate::message::{self, Consumption, IdFormat, KafkaMessage, MessageSettings};
use crate::window::HourWindow;
use chrono::TimeZone;

fn hour() -> HourWindow {
    HourWindow::starting_at(
        chrono::Utc.with_ymd_and_hms(2026, 11, 1, 3, 0, 0).unwrap(),
        "t",
    )
    .unwrap()
}

fn expected(cluster: &str, id_format: IdFormat) -> MessageSettings {
    MessageSettings {
        cluster_name: cluster.into(),
        service_name: "OPENSHIFT".into(),
        service_version: "GA".into(),
        service_location: "X".into(),
        max_message_bytes: 1_000_000,
        id_format,
    }
}

/// Part `part` of `window` as we write it, with one entry per (namespace, cpu).
fn message(cluster: &str, window: &HourWindow, part: usize, cpu: &[(&str, f64)]) -> KafkaMessage {
    KafkaMessage {
        header: message::Header {
            consumption_period_type: message::PeriodType::Hour,
            consumption_start_ts: message::start_ts(window),
            message_id: message::message_id(cluster, window, part - 1),
            service_name: "OPENSHIFT".into(),
            service_version: "GA".into(),
            service_location: "X".into(),
        },
        payload: cpu
            .iter()
            .map(|(ns, cpu)| message::Entry {
                external_id: format!("{cluster}_{ns}"),
                consumption: Consumption {
                    cpu: *cpu,
                    gpu: 0.0,
                    storage_rwo_standard: 0.0,
                    storage_rwx_standard: 0.0,
                    storage_rwx_basic: 0.0,
                    storage_rwx_premium: 0.0,
                    ram: None,
                    gpu_models: Default::default(),
                },
            })
            .collect(),
    }
}

/// A record's `message_id` and `part` headers, those given.
fn headers<'a>(id: Option<&'a str>, part: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    [("message_id", id), ("part", part)]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
}

fn body(cluster: &str, window: &HourWindow, part: usize, ns: &str, cpu: f64) -> Vec<u8> {
    serde_json::to_vec(&message(cluster, window, part, &[(ns, cpu)])).unwrap()
}

#[test]
fn our_own_message_passes_the_record_check() {
    let w = hour();
    let id = message::message_id("c1", &w, 1);
    let key = "c1/2026-11-01T03:00:00Z";
    let got = check_record(
        &expected("c1", IdFormat::Uuid),
        &w,
        key,
        &headers(Some(&id), Some("2/3")),
        &body("c1", &w, 2, "a", 1.0),
    );
    assert_eq!(
        got,
        Ok(Checked {
            part: 2,
            parts: 3,
            first: Some("c1_a".into()),
            last: Some("c1_a".into())
        })
    );
    // Audited with the other format, it is foreign, and the reason names the flag.
    let e = check_record(
        &expected("c1", IdFormat::Legacy),
        &w,
        key,
        &headers(Some(&id), Some("2/3")),
        &body("c1", &w, 2, "a", 1.0),
    )
    .unwrap_err();
    assert!(e.contains("--message-id-format uuid"), "{e}");
    // With the CloudEvents attributes as a run writes them; then with one wrong.
    let mut with_ce: Vec<(String, String)> = cloudevents::headers("c1", &w, key, &id)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    with_ce.push(("content-type".into(), cloudevents::CONTENT_TYPE.into()));
    let all = |extra: &[(String, String)]| {
        let mut h = headers(Some(&id), Some("2/3"));
        h.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        check_record(
            &expected("c1", IdFormat::Uuid),
            &w,
            key,
            &h,
            &body("c1", &w, 2, "a", 1.0),
        )
    };
    assert!(all(&with_ce).is_ok());
    with_ce[2].1 = "/consumption-metrics/c2".into();
    assert!(all(&with_ce).unwrap_err().contains("ce_source"));
}

#[test]
fn records_we_would_not_produce_are_foreign() {
    let w = hour();
    let id1 = message::message_id("c1", &w, 0);
    let good = body("c1", &w, 1, "a", 1.0);
    let altered = |change: &dyn Fn(&mut KafkaMessage)| {
        let mut m = message("c1", &w, 1, &[("a", 1.0), ("b", 2.0)]);
        change(&mut m);
        serde_json::to_vec(&m).unwrap()
    };
    // (message_id header, part header, payload, what the reason says)
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Vec<u8>, &'a str);
    let cases: Vec<Case> = vec![
        (Some(&id1), None, good.clone(), "no `part`"),
        (Some(&id1), Some("0/1"), good.clone(), "not k/n"),
        (Some(&id1), Some("2/1"), good.clone(), "not k/n"),
        (None, Some("1/1"), good.clone(), "no `message_id`"),
        (Some("x"), Some("1/1"), good.clone(), "is not the id"),
        (Some(&id1), Some("1/1"), b"{}".to_vec(), "not an MCMP"),
        // Another cluster's payload under our key.
        (
            Some(&id1),
            Some("1/1"),
            body("c2", &w, 1, "a", 1.0),
            "differs from its header",
        ),
        // The right id in the header, a payload of another hour.
        (
            Some(&id1),
            Some("1/1"),
            body("c1", &w.next(), 1, "a", 1.0),
            "differs",
        ),
        // Everything right but the numbers or names: the contract, as a run checks it.
        (
            Some(&id1),
            Some("1/1"),
            body("c1", &w, 1, "a", -1.0),
            "c1_a cpu is -1",
        ),
        (
            Some(&id1),
            Some("1/1"),
            body("c1", &w, 1, "Not_A_Namespace", 1.0),
            "is not <cluster>_<namespace>",
        ),
        (
            Some(&id1),
            Some("1/1"),
            altered(&|m| m.payload[1].consumption.gpu = 1e300),
            "c1_b gpu is 1e300",
        ),
        (
            Some(&id1),
            Some("1/1"),
            altered(&|m| m.header.service_name = "OPENSTACK".into()),
            "service_name \"OPENSTACK\" is not this job's \"OPENSHIFT\" (--service-name)",
        ),
        (
            Some(&id1),
            Some("1/1"),
            altered(&|m| m.payload[1].external_id = "c1_a".into()),
            "listed twice",
        ),
        (
            Some(&id1),
            Some("1/1"),
            altered(&|m| m.payload.reverse()),
            "comes after c1_b: not in the order we write",
        ),
        (
            Some(&id1),
            Some("1/1"),
            altered(&|m| m.payload[0].consumption.storage_rwx_basic = 0.1234567),
            "storage_rwx_basic is 0.1234567, with more than 6 decimals",
        ),
    ];
    for (id, part, payload, expect) in cases {
        let e = check_record(
            &expected("c1", IdFormat::Uuid),
            &w,
            "c1/2026-11-01T03:00:00Z",
            &headers(id, part),
            &payload,
        )
        .unwrap_err();
        assert!(e.contains(expect), "{e:?} should say {expect:?}");
    }
}

fn copy(digest: u8, offset: i64) -> Stored {
    Stored {
        digest: [digest; 32],
        message_id: "id".into(),
        partition: 0,
        offset,
        first: None,
        last: None,
    }
}

fn seen(parts: &[(usize, Vec<Stored>)], total: usize) -> Seen {
    let mut s = Seen {
        totals: [total].into(),
        ..Seen::default()
    };
    for (k, copies) in parts {
        let mut c = Copies::new(copies[0].clone());
        for more in &copies[1..] {
            c.add(more.digest, more.partition, more.offset);
        }
        s.messages += copies.len();
        s.parts.insert(*k, c);
    }
    s
}

#[test]
fn verdicts() {
    let w = hour();
    let status = |s: Option<&Seen>| judge(&w, s).status;
    assert_eq!(status(None), Status::Missing);
    assert_eq!(
        status(Some(&seen(
            &[(1, vec![copy(1, 0)]), (2, vec![copy(2, 1)])],
            2
        ))),
        Status::Complete
    );
    assert_eq!(
        status(Some(&seen(&[(1, vec![copy(1, 0)])], 2))),
        Status::Missing
    );
    assert_eq!(
        status(Some(&seen(&[(1, vec![copy(1, 0), copy(1, 5)])], 1))),
        Status::Duplicated
    );
    assert!(Status::Duplicated.is_good());
    assert_eq!(
        status(Some(&seen(&[(1, vec![copy(1, 0), copy(9, 5)])], 1))),
        Status::Conflicting
    );
    let mut s = seen(&[(1, vec![copy(1, 0)])], 1);
    s.messages += 1;
    s.foreign
        .push(|| "partition 0 offset 3: no `part` header".into());
    let r = judge(&w, Some(&s));
    assert_eq!(r.status, Status::Foreign);
    assert_eq!(r.messages, 2);
    let mut s = seen(&[(1, vec![copy(1, 0)])], 1);
    s.totals.insert(2);
    assert_eq!(status(Some(&s)), Status::Conflicting);
}

/// Each message in order is not enough: a namespace at the end of one part and again at the
/// start of the next would be billed twice.
#[test]
fn parts_that_overlap_are_foreign() {
    let w = hour();
    let ranged = |offset: i64, first: &str, last: &str| Stored {
        first: Some(first.into()),
        last: Some(last.into()),
        ..copy(offset as u8, offset)
    };
    let ok = seen(
        &[
            (1, vec![ranged(0, "c1_a", "c1_m")]),
            (2, vec![ranged(1, "c1_n", "c1_z")]),
        ],
        2,
    );
    assert_eq!(judge(&w, Some(&ok)).status, Status::Complete);
    let overlap = seen(
        &[
            (1, vec![ranged(0, "c1_a", "c1_m")]),
            (2, vec![ranged(1, "c1_m", "c1_z")]),
        ],
        2,
    );
    let r = judge(&w, Some(&overlap));
    assert_eq!(r.status, Status::Foreign);
    assert!(r.findings[0].contains("parts 1 and 2 overlap"), "{r:?}");
}

/// A flood of junk keeps [`KEEP`] lines and counts the rest, and copies of one part list
/// [`KEEP`] positions.
#[test]
fn junk_is_kept_up_to_a_bound_and_counted() {
    let w = hour();
    let mut s = seen(&[(1, vec![copy(1, 0)])], 1);
    for i in 0..1000 {
        s.foreign.push(|| format!("offset {i}: junk"));
        s.parts.get_mut(&1).unwrap().add([1; 32], 0, i + 1);
    }
    let r = judge(&w, Some(&s));
    assert_eq!(r.status, Status::Foreign);
    assert_eq!(r.findings_left_out, 1000 - KEEP);
    let duplicates = r
        .findings
        .iter()
        .find(|f| f.contains("1001 times"))
        .unwrap();
    assert!(
        duplicates.contains(&format!("and {} more", 1001 - KEEP)),
        "{duplicates}"
    );
    assert!(duplicates.len() < 400, "{duplicates}");
}

#[test]
fn comparison_names_namespace_and_dimension() {
    let w = hour();
    let m = |ns: &str, cpu: f64| -> KafkaMessage {
        serde_json::from_slice(&body("c1", &w, 1, ns, cpu)).unwrap()
    };
    assert!(compare(&[m("a", 1.0)], &[m("a", 1.0)]).is_empty());
    assert_eq!(
        compare(&[m("a", 1.0)], &[m("a", 1.25)]),
        vec!["c1_a cpu: topic 1, now 1.25".to_string()]
    );
    let f = compare(&[m("a", 1.0)], &[m("b", 1.0)]);
    assert_eq!(f.len(), 2, "{f:?}");
}

/// A repeated or unreadable identity header makes a record foreign, named: consumers that
/// keep the last copy would read another event than the first copy says.
#[test]
fn repeated_or_undecodable_identity_headers_are_foreign() {
    let ok: Vec<(&str, Option<&[u8]>)> = vec![
        ("message_id", Some(b"a")),
        ("part", Some(b"1/1")),
        ("x-trace", Some(b"1")),
        ("x-trace", Some(&[0xff])),
    ];
    assert_eq!(super::record::check_identity_headers(&ok), Ok(()));
    let twice: Vec<(&str, Option<&[u8]>)> = vec![
        ("message_id", Some(b"a")),
        ("part", Some(b"1/1")),
        ("message_id", Some(b"b")),
    ];
    let e = super::record::check_identity_headers(&twice).unwrap_err();
    assert!(
        e.contains("`message_id` header appears more than once"),
        "{e}"
    );
    let ce_twice: Vec<(&str, Option<&[u8]>)> = vec![("ce_id", Some(b"a")), ("ce_id", Some(b"a"))];
    assert!(super::record::check_identity_headers(&ce_twice).is_err());
    let binary: Vec<(&str, Option<&[u8]>)> = vec![("ce_id", Some(&[0xff, 0xfe]))];
    let e = super::record::check_identity_headers(&binary).unwrap_err();
    assert!(e.contains("not UTF-8"), "{e}");
    let null: Vec<(&str, Option<&[u8]>)> = vec![("part", None)];
    assert!(super::record::check_identity_headers(&null).is_err());
}

/// A finding quoting a huge header keeps at most MAX_FINDING_BYTES of it and says how much it
/// left out; a finding past KEEP is counted, not kept.
#[test]
fn findings_are_bounded_in_bytes_and_count() {
    let mut b = Bounded::default();
    let huge = "é".repeat(100_000);
    b.push(|| format!("`message_id` header {huge} is not ours"));
    let kept = &b.kept[0];
    assert!(kept.len() <= MAX_FINDING_BYTES + 64, "{}", kept.len());
    assert!(kept.ends_with("more bytes left out)"), "{kept}");
    for _ in 0..KEEP + 5 {
        b.push(|| "x".into());
    }
    assert_eq!(b.kept.len(), KEEP);
    assert_eq!(b.left_out, 6);
}
