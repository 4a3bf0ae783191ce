//! Publishing through a real broker behind a real mTLS terminator: what lands on the topic is
//! exactly the dry-run, the checkpoint follows the acknowledgements, and every certificate
//! problem fails fast with a clear error and the checkpoint untouched.

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::kafka::{TestKafka, start_kafka};
use common::{Outcome, bin, run, standard};
use consumption_metrics::message::KafkaMessage;

fn kafka() -> &'static TestKafka {
    static K: OnceLock<TestKafka> = OnceLock::new();
    K.get_or_init(|| start_kafka("kafka"))
}

/// A scheduled publishing run against the standard Prometheus.
fn publish(topic: &str, checkpoint: &Path, now: &str, kafka_flags: &[String]) -> Outcome {
    let p = standard();
    run(bin()
        .args([
            "--prometheus-url",
            &p.url,
            "--cluster-name",
            "synth-01",
            "--now",
            now,
        ])
        .args([
            "--storage-tier",
            "gold=premium,cephfs=basic",
            "--prometheus-retries",
            "0",
        ])
        .args(["--kafka-delivery-timeout", "10s"])
        .arg("--checkpoint-file")
        .arg(checkpoint)
        .args(kafka_flags)
        .env("KAFKA_TOPIC", topic))
}

fn dry_run(since: &str, until: &str) -> Vec<KafkaMessage> {
    let p = standard();
    let out = run(bin()
        .args([
            "--prometheus-url",
            &p.url,
            "--cluster-name",
            "synth-01",
            "--dry-run",
        ])
        .args([
            "--now",
            "2026-11-02T00:00:00Z",
            "--since",
            since,
            "--until",
            until,
        ])
        .args(["--storage-tier", "gold=premium,cephfs=basic"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

fn checkpoint_with(dir: &Path, value: &str) -> std::path::PathBuf {
    let cp = dir.join("checkpoint");
    std::fs::write(&cp, format!("{value}\n")).unwrap();
    cp
}

#[test]
fn published_hours_equal_the_dry_run_and_advance_the_checkpoint() {
    let k = kafka();
    k.create_topic("mcmp-publish");
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_with(dir.path(), "2026-11-01T01:00:00Z");
    let out = publish(
        "mcmp-publish",
        &cp,
        "2026-11-01T04:10:00Z",
        &k.flags("mcmp-publish"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap().trim(),
        "2026-11-01T04:00:00Z"
    );

    let expected = dry_run("2026-11-01T01:00:00Z", "2026-11-01T04:00:00Z");
    assert_eq!(expected.len(), 3);
    // The run's report says what it sent (a publishing run once logged messages=0).
    let bytes: usize = expected
        .iter()
        .map(|m| serde_json::to_vec(m).unwrap().len())
        .sum();
    let done = out
        .stderr
        .lines()
        .find(|l| l.contains("run complete"))
        .unwrap_or_else(|| panic!("no run report in {}", out.stderr));
    for field in [
        "planned=3".to_string(),
        "published=3".into(),
        "messages=3".into(),
        format!("bytes={bytes}"),
        "windows=\"closed\"".into(),
        "checkpoint=\"2026-11-01T04:00:00Z\"".into(),
    ] {
        assert!(done.contains(&field), "{field} not in {done}");
    }
    let got = k.consume("mcmp-publish", 3, Duration::from_secs(20));
    assert_eq!(got.len(), 3, "messages on the topic");
    let mut got: Vec<_> = got.into_iter().collect();
    got.sort_by(|a, b| a.key.cmp(&b.key));
    for (m, want) in got.iter().zip(&expected) {
        // Byte for byte: the payload is the compact form of the dry-run's message.
        assert_eq!(m.payload, serde_json::to_vec(want).unwrap());
        let start = &want.header.consumption_start_ts[..13];
        assert_eq!(m.key, format!("synth-01/{start}:00:00Z"));
        assert!(
            m.headers
                .contains(&("message_id".into(), want.header.message_id.clone()))
        );
        assert!(m.headers.contains(&("part".into(), "1/1".into())));
    }

    // A second run at the same time has nothing to do and sends nothing.
    let again = publish(
        "mcmp-publish",
        &cp,
        "2026-11-01T04:10:00Z",
        &k.flags("mcmp-publish"),
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
}

/// Every record carries the CloudEvents attributes in binary mode, read back from the real
/// broker: `ce_id` is the message id, `ce_subject` the key, `ce_time` the hour's start, the
/// body byte for byte the same. `--kafka-cloudevents false` leaves exactly them out.
#[test]
fn records_carry_cloudevents_attributes_unless_turned_off() {
    let k = kafka();
    let dir = tempfile::tempdir().unwrap();
    let mut bodies = Vec::new();
    for (topic, cloudevents) in [("mcmp-ce-on", "true"), ("mcmp-ce-off", "false")] {
        k.create_topic(topic);
        let cp = checkpoint_with(dir.path(), "2026-11-01T02:00:00Z");
        std::fs::rename(&cp, dir.path().join(topic)).unwrap();
        let mut flags = k.flags(topic);
        flags.extend(["--kafka-cloudevents".to_string(), cloudevents.to_string()]);
        let out = publish(
            topic,
            &dir.path().join(topic),
            "2026-11-01T03:10:00Z",
            &flags,
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let got = k.consume(topic, 1, Duration::from_secs(20));
        assert_eq!(got.len(), 1, "{topic}");
        bodies.push(got[0].payload.clone());
        let m = &got[0];
        let header = |name: &str| {
            m.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let body: KafkaMessage = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(header("message_id"), Some(body.header.message_id.as_str()));
        let ce: Vec<&(String, String)> = m
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("ce_"))
            .collect();
        if cloudevents == "false" {
            assert!(ce.is_empty(), "{ce:?}");
            continue;
        }
        assert_eq!(header("ce_specversion"), Some("1.0"));
        assert_eq!(header("ce_id"), Some(body.header.message_id.as_str()));
        assert_eq!(header("ce_source"), Some("/consumption-metrics/synth-01"));
        assert_eq!(
            header("ce_type"),
            Some("io.consumption-metrics.mcmp.consumption.hour.v1")
        );
        assert_eq!(header("ce_time"), Some("2026-11-01T02:00:00Z"));
        assert_eq!(header("ce_subject"), Some(m.key.as_str()));
        assert_eq!(m.key, "synth-01/2026-11-01T02:00:00Z");
        assert_eq!(
            header("ce_dataschema"),
            Some(
                "https://github.com/consumption-metrics/consumption-metrics/schema/v1/\
                 mcmp-message.schema.json"
            )
        );
        assert_eq!(ce.len(), 7, "{ce:?}");
    }
    assert_eq!(
        bodies[0], bodies[1],
        "the body does not depend on the headers"
    );
}

/// Killed after Kafka acknowledged an hour but before the checkpoint moved: the next run
/// re-sends that hour with the same id and payload, then goes on; nothing is skipped.
#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "simulates a crash with the test-hooks feature: bash scripts/test.sh enables it"
)]
fn a_crash_between_publish_and_checkpoint_resends_the_same_hour() {
    let k = kafka();
    k.create_topic("mcmp-crash");
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_with(dir.path(), "2026-11-01T02:00:00Z");
    let p = standard();
    let crashed = run(bin()
        .args(["--prometheus-url", &p.url, "--cluster-name", "synth-01"])
        .args([
            "--now",
            "2026-11-01T05:10:00Z",
            "--storage-tier",
            "gold=premium,cephfs=basic",
        ])
        .arg("--checkpoint-file")
        .arg(&cp)
        .args(k.flags("mcmp-crash"))
        .env("CONSUMPTION_METRICS_CRASH_AFTER_PUBLISH", "2"));
    assert_ne!(crashed.code, 0, "the hook must abort the process");
    // Hour 02 was published and checkpointed; hour 03 published, not checkpointed.
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap().trim(),
        "2026-11-01T03:00:00Z"
    );

    let resumed = publish(
        "mcmp-crash",
        &cp,
        "2026-11-01T05:10:00Z",
        &k.flags("mcmp-crash"),
    );
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap().trim(),
        "2026-11-01T05:00:00Z"
    );

    // 02, 03 (crash), 03 again, 04.
    let got = k.consume("mcmp-crash", 4, Duration::from_secs(20));
    assert_eq!(got.len(), 4);
    let expected = dry_run("2026-11-01T02:00:00Z", "2026-11-01T05:00:00Z");
    let want: std::collections::BTreeSet<Vec<u8>> = expected
        .iter()
        .map(|m| serde_json::to_vec(m).unwrap())
        .collect();
    let seen: std::collections::BTreeSet<Vec<u8>> = got.iter().map(|m| m.payload.clone()).collect();
    // The duplicate is byte-identical, so the distinct payloads are exactly one clean run's.
    assert_eq!(seen, want);
}

/// Each certificate problem: non-zero exit within seconds, a clear reason, checkpoint as it was.
#[test]
fn certificate_problems_fail_fast_and_leave_the_checkpoint() {
    let k = kafka();
    k.create_topic("mcmp-tls");
    let flags_with = |replace: &[(&str, &Path)]| k.flags_with("mcmp-tls", replace);
    let pki = &k.pki;
    // The client key encrypted with a pass phrase: OpenSSL once asked for it on a terminal.
    let keys = tempfile::tempdir().unwrap();
    let encrypted = keys.path().join("encrypted.pem");
    {
        let key = std::fs::read(&pki.client.key).unwrap();
        let key = openssl::pkey::PKey::private_key_from_pem(&key).unwrap();
        let pem = key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pass")
            .unwrap();
        std::fs::write(&encrypted, pem).unwrap();
    }
    let cases: Vec<(&str, Vec<String>, i32, &[&str])> = vec![
        (
            "encrypted key",
            flags_with(&[("--kafka-key", &encrypted)]),
            5,
            &["encrypted with a pass phrase", "openssl pkey"],
        ),
        (
            "certificate from another CA",
            flags_with(&[
                ("--kafka-cert", &pki.other_ca_client.cert),
                ("--kafka-key", &pki.other_ca_client.key),
            ]),
            5,
            &["could not reach Kafka", "librdkafka"],
        ),
        (
            "expired certificate",
            flags_with(&[
                ("--kafka-cert", &pki.expired_client.cert),
                ("--kafka-key", &pki.expired_client.key),
            ]),
            5,
            &["expired on", "renew"],
        ),
        (
            "wrong CA file",
            flags_with(&[("--kafka-ca", &pki.other_ca)]),
            5,
            &["could not reach Kafka", "certificate verify failed"],
        ),
        (
            "key of another certificate",
            flags_with(&[("--kafka-key", &pki.other_ca_client.key)]),
            5,
            &["does not belong to --kafka-cert"],
        ),
        (
            "missing certificate file",
            flags_with(&[("--kafka-cert", Path::new("/nonexistent/client.pem"))]),
            5,
            &["could not read --kafka-cert /nonexistent/client.pem"],
        ),
    ];
    for (what, flags, code, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cp = checkpoint_with(dir.path(), "2026-11-01T01:00:00Z");
        let started = Instant::now();
        let out = publish("mcmp-tls", &cp, "2026-11-01T04:10:00Z", &flags);
        let took = started.elapsed();
        assert_eq!(out.code, code, "{what}: {}", out.stderr);
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        for n in needles {
            assert!(line.contains(n), "{what}: {n:?} not in {line:?}");
        }
        assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
        // No later run succeeds unchanged: a TLS refusal is not marked retryable.
        assert!(line.contains("[not retryable"), "{what}: {line:?}");
        assert_eq!(
            std::fs::read_to_string(&cp).unwrap().trim(),
            "2026-11-01T01:00:00Z",
            "{what}"
        );
    }
    assert!(k.consume("mcmp-tls", 1, Duration::from_secs(2)).is_empty());
}

/// A Prometheus client key that does not belong to its certificate, or is encrypted, is named
/// as such before any query (reqwest said only "builder error"; OpenSSL would prompt).
#[test]
fn a_prometheus_client_key_is_checked_against_its_certificate() {
    let pki = &kafka().pki;
    let with = |key: &Path| {
        run(bin()
            .args([
                "--prometheus-url",
                "https://127.0.0.1:9",
                "--cluster-name",
                "c",
            ])
            .args(["--dry-run", "--now", "2026-11-02T00:00:00Z"])
            .arg("--prometheus-cert")
            .arg(&pki.client.cert)
            .arg("--prometheus-key")
            .arg(key))
    };
    let out = with(&pki.other_ca_client.key);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("does not belong to --prometheus-cert"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("builder error"), "{}", out.stderr);
    let out = with(&pki.client.key);
    assert!(
        !out.stderr.contains("does not belong"),
        "the matching key is accepted: {}",
        out.stderr
    );
}

/// Without a client certificate the job refuses to start, and the terminator really does
/// refuse clients without one (otherwise the tests above would prove nothing).
#[test]
fn no_client_certificate_is_refused_by_job_and_broker() {
    let k = kafka();
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_with(dir.path(), "2026-11-01T01:00:00Z");
    let flags: Vec<String> = k
        .flags("mcmp-tls")
        .chunks(2)
        .filter(|c| c[0] != "--kafka-cert" && c[0] != "--kafka-key")
        .flatten()
        .cloned()
        .collect();
    let out = publish("mcmp-tls", &cp, "2026-11-01T04:10:00Z", &flags);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("publishing needs --kafka-cert"),
        "{}",
        out.stderr
    );

    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, Producer};
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("broker.address.family", "v4")
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", k.pki.ca.display().to_string())
        .create()
        .unwrap();
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(5));
    assert!(
        metadata.is_err(),
        "the terminator accepted a client without a certificate"
    );
}

/// An hour of 20,000 namespaces is split into parts under the broker's 1 MB default, all
/// acknowledged through mTLS, each part with its own id and the same header fields.
#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_namespaces_are_split_and_all_parts_delivered() {
    use consumption_metrics::kafka::{KafkaSettings, Publisher, TlsFiles, Transport};
    use consumption_metrics::message::MessageSettings;
    use consumption_metrics::message::shape;
    use consumption_metrics::usage::{HourUsage, NamespaceUsage};
    use consumption_metrics::window::HourWindow;

    let k = kafka();
    k.create_topic("mcmp-big");
    let window = HourWindow::starting_at("2026-11-01T03:00:00Z".parse().unwrap(), "t").unwrap();
    let usage = HourUsage {
        window,
        namespaces: (0..20_000)
            .map(|i| {
                let u = NamespaceUsage {
                    cpu: 0.25 * f64::from(i % 17),
                    storage_rwo_standard: 10.0,
                    ..Default::default()
                };
                (format!("tenant-{i:05}"), u)
            })
            .collect(),
    };
    let config = MessageSettings {
        cluster_name: "big".into(),
        service_name: "OPENSHIFT".into(),
        service_version: "GA".into(),
        service_location: "TEST".into(),
        max_message_bytes: 900_000,
        id_format: Default::default(),
    };
    let messages = shape(&usage, &config).unwrap();
    assert!(messages.len() >= 4, "{} parts", messages.len());
    let settings = KafkaSettings {
        brokers: k.brokers.clone(),
        topic: "mcmp-big".into(),
        transport: Transport::MutualTls(TlsFiles {
            ca: k.pki.ca.clone(),
            cert: k.pki.client.cert.clone(),
            key: k.pki.client.key.clone(),
        }),
        properties: vec![("broker.address.family".into(), "v4".into())],
        max_message_bytes: 900_000,
        delivery_timeout: Duration::from_secs(20),
        preflight_timeout: Duration::from_secs(10),
        cloudevents: true,
    };
    let p = Publisher::connect(&settings).await.unwrap();
    p.publish_hour("big", &window, &messages).await.unwrap();
    let got = k.consume("mcmp-big", messages.len(), Duration::from_secs(30));
    assert_eq!(got.len(), messages.len());
    let mut entries = 0;
    for m in &got {
        assert!(m.payload.len() <= 900_000);
        let parsed: KafkaMessage = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(
            parsed.header.consumption_start_ts,
            "2026-11-01T03:00:00.000000+00:00"
        );
        entries += parsed.payload.len();
    }
    assert_eq!(entries, 20_000);
    let ids: std::collections::BTreeSet<_> = got
        .iter()
        .filter_map(|m| {
            m.headers
                .iter()
                .find(|(k, _)| k == "message_id")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(ids.len(), messages.len());
}

/// The scheduled job stepped through the data's six hours, one run per hour, with failures
/// between runs: the broker unreachable, a certificate from another CA, the process killed
/// between publish and checkpoint. Afterwards every hour is on the topic, the distinct ids and
/// payloads are exactly one clean run's (the dry-run's), and the checkpoint is the last hour.
#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "simulates a crash with the test-hooks feature: bash scripts/test.sh enables it"
)]
fn a_day_of_scheduled_runs_with_failures_loses_and_doubles_nothing() {
    // Its own broker, so that stopping the terminator disturbs no other test.
    let mut k = start_kafka("kafka-day");
    k.create_topic("mcmp-day");
    let flags = k.flags("mcmp-day");
    let dir = tempfile::tempdir().unwrap();
    let cp = checkpoint_with(dir.path(), "2026-11-01T00:00:00Z");
    let checkpoint = || std::fs::read_to_string(&cp).unwrap().trim().to_owned();

    // 01:10, healthy: hour 00.
    let out = publish("mcmp-day", &cp, "2026-11-01T01:10:00Z", &flags);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(checkpoint(), "2026-11-01T01:00:00Z");

    // 02:10, the broker is unreachable: fails fast, nothing moves.
    k.stop_terminator();
    let started = Instant::now();
    let out = publish("mcmp-day", &cp, "2026-11-01T02:10:00Z", &flags);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("could not reach Kafka"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(checkpoint(), "2026-11-01T01:00:00Z");
    k.start_terminator();

    // 03:10, someone mounted a certificate from another CA.
    let wrong = k.flags_with(
        "mcmp-day",
        &[
            ("--kafka-cert", &k.pki.other_ca_client.cert),
            ("--kafka-key", &k.pki.other_ca_client.key),
        ],
    );
    let out = publish("mcmp-day", &cp, "2026-11-01T03:10:00Z", &wrong);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert_eq!(checkpoint(), "2026-11-01T01:00:00Z");

    // 04:10, killed after the second hour was acknowledged and before it was checkpointed:
    // hour 01 is done, hour 02 is on the topic but not recorded.
    let p = standard();
    let crashed = run(bin()
        .args(["--prometheus-url", &p.url, "--cluster-name", "synth-01"])
        .args(["--now", "2026-11-01T04:10:00Z"])
        .args(["--storage-tier", "gold=premium,cephfs=basic"])
        .arg("--checkpoint-file")
        .arg(&cp)
        .args(&flags)
        .env("CONSUMPTION_METRICS_CRASH_AFTER_PUBLISH", "2"));
    assert_ne!(crashed.code, 0, "the hook must abort the process");
    assert_eq!(checkpoint(), "2026-11-01T02:00:00Z");

    // 05:10 catches up from 02 (re-sending it) through 04; 06:10 sends 05.
    for (now, after) in [
        ("2026-11-01T05:10:00Z", "2026-11-01T05:00:00Z"),
        ("2026-11-01T06:10:00Z", "2026-11-01T06:00:00Z"),
    ] {
        let out = publish("mcmp-day", &cp, now, &flags);
        assert_eq!(out.code, 0, "{now}: {}", out.stderr);
        assert_eq!(checkpoint(), after, "{now}");
    }

    // Six hours plus the one re-sent.
    let got = k.consume("mcmp-day", 7, Duration::from_secs(30));
    assert_eq!(got.len(), 7, "messages on the topic");
    let expected = dry_run("2026-11-01T00:00:00Z", "2026-11-01T06:00:00Z");
    assert_eq!(expected.len(), 6);
    let want: std::collections::BTreeSet<Vec<u8>> = expected
        .iter()
        .map(|m| serde_json::to_vec(m).unwrap())
        .collect();
    let seen: std::collections::BTreeSet<Vec<u8>> = got.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(seen, want, "distinct payloads equal one clean run");
    let ids = |ms: &[KafkaMessage]| -> std::collections::BTreeSet<String> {
        ms.iter().map(|m| m.header.message_id.clone()).collect()
    };
    let got_messages: Vec<KafkaMessage> = got
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(ids(&got_messages), ids(&expected));
    let resent: Vec<_> = got_messages
        .iter()
        .filter(|m| m.header.consumption_start_ts.starts_with("2026-11-01T02:"))
        .collect();
    assert_eq!(resent.len(), 2, "only the crashed hour is doubled");
}
