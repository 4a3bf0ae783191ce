//! Kafka faults injected with librdkafka's mock cluster: a broker going down, retriable and
//! fatal errors, an oversized message, idempotence denied. In every case the hour is either
//! fully acknowledged or reported as failed, and the checkpoint never passes it.
//! The mock cluster speaks plaintext, a transport only the `test-hooks` feature compiles.
#![cfg(feature = "test-hooks")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use consumption_metrics::checkpoint::{Checkpoint, FileCheckpoint};
use consumption_metrics::kafka::{KafkaSettings, PublishError, Publisher};
use consumption_metrics::manager::Manager;
use consumption_metrics::message::MessageSettings;
use consumption_metrics::message::{KafkaMessage, shape};
use consumption_metrics::prometheus::Prometheus;
use consumption_metrics::usage::{HourUsage, NamespaceUsage};
use consumption_metrics::window::HourWindow;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const TOPIC: &str = "mcmp";

fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    let c = MockCluster::new(1).unwrap();
    c.create_topic(TOPIC, 3, 1).unwrap();
    c
}

fn settings(c: &MockCluster<'static, DefaultProducerContext>) -> KafkaSettings {
    common::mock_kafka_settings(c.bootstrap_servers(), TOPIC)
}

fn hour(h: u32) -> (HourWindow, Vec<KafkaMessage>) {
    let start = format!("2026-11-01T{h:02}:00:00Z").parse().unwrap();
    let window = HourWindow::starting_at(start, "test").unwrap();
    let usage = HourUsage {
        window,
        namespaces: BTreeMap::from([(
            "team-a".to_string(),
            NamespaceUsage {
                cpu: 1.5,
                ..Default::default()
            },
        )]),
    };
    let config = MessageSettings {
        cluster_name: "mock".into(),
        service_name: "OPENSHIFT".into(),
        service_version: "GA".into(),
        service_location: "TEST".into(),
        max_message_bytes: 900_000,
        id_format: Default::default(),
    };
    (window, shape(&usage, &config).unwrap())
}

async fn publish(p: &Publisher, h: u32) -> Result<(), PublishError> {
    let (w, m) = hour(h);
    let bytes = p.publish_hour("mock", &w, &m).await?;
    let expected: usize = m.iter().map(|m| serde_json::to_vec(m).unwrap().len()).sum();
    assert_eq!(
        bytes, expected as u64,
        "the bytes reported are the payloads sent"
    );
    Ok(())
}

#[tokio::test]
async fn a_broker_down_mid_run_fails_the_hour_as_retryable_then_recovers() {
    let c = cluster();
    let p = Publisher::connect(&settings(&c)).await.unwrap();
    publish(&p, 1).await.unwrap();
    c.broker_down(1).unwrap();
    let started = Instant::now();
    let e = publish(&p, 2).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        e.to_string()
            .contains("part 1 of 1 of the hour [2026-11-01T02:00:00Z"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    c.broker_up(1).unwrap();
    publish(&p, 2).await.unwrap();
}

#[tokio::test]
async fn retriable_broker_errors_are_retried_and_delivered() {
    let c = cluster();
    let p = Publisher::connect(&settings(&c)).await.unwrap();
    c.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3],
    );
    publish(&p, 1).await.unwrap();
}

#[tokio::test]
async fn a_topic_authorization_failure_is_fatal() {
    let c = cluster();
    let p = Publisher::connect(&settings(&c)).await.unwrap();
    c.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let e = publish(&p, 1).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("producer ACL"), "{e}");
}

#[tokio::test]
async fn an_oversized_message_is_fatal_and_names_the_limit() {
    let c = cluster();
    let p = Publisher::connect(&settings(&c)).await.unwrap();
    c.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let e = publish(&p, 1).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("--max-message-bytes"), "{e}");
}

#[tokio::test]
async fn idempotence_denied_stops_publishing() {
    let c = cluster();
    c.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED; 4],
    );
    let result = match Publisher::connect(&settings(&c)).await {
        Err(e) => Err(e),
        Ok(p) => publish(&p, 1).await,
    };
    let e = result.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
}

#[tokio::test]
async fn an_unknown_topic_fails_the_preflight() {
    let c = cluster();
    let mut s = settings(&c);
    s.topic = "no-such-topic".into();
    // The mock cluster auto-creates topics unless told otherwise.
    c.topic_error(
        "no-such-topic",
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    )
    .unwrap();
    let e = Publisher::connect(&s)
        .await
        .err()
        .expect("connect must fail");
    assert!(e.to_string().contains("no-such-topic"), "{e}");
}

/// The whole run: the first hour is acknowledged and checkpointed; the second is refused, so
/// the run stops and the checkpoint stays at the end of the first.
#[tokio::test(flavor = "multi_thread")]
async fn the_checkpoint_never_passes_an_unacknowledged_hour() {
    let p = common::standard();
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let cp_path = dir.path().join("checkpoint");
    std::fs::write(&cp_path, "2026-11-01T01:00:00Z\n").unwrap();
    let config = common::publishing_config(&p.url, "2026-11-01T04:10:00Z", settings(&c));
    let prometheus = Prometheus::new(&config.prometheus).unwrap();
    let mut manager = Manager::with_checkpoint(
        config,
        prometheus,
        Checkpoint::File(FileCheckpoint::new(&cp_path)),
    );
    // One Produce request per hour: the first succeeds, every later one is refused.
    let mut errors = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR];
    errors.extend([RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 10]);
    c.request_errors(RDKafkaApiKey::Produce, &errors);
    let e = manager.run().await.unwrap_err();
    assert_eq!(e.exit_code(), 5, "{e}");
    assert!(e.to_string().contains("2026-11-01T02:00:00Z"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&cp_path).unwrap().trim(),
        "2026-11-01T02:00:00Z"
    );
}

/// A broker that creates the topic on first use answers "leader not available" for a moment:
/// the preflight asks again instead of failing the run.
#[tokio::test(flavor = "multi_thread")]
async fn a_topic_still_being_created_is_waited_for() {
    let c = cluster();
    c.topic_error(
        TOPIC,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    )
    .unwrap();
    let s = settings(&c);
    let connecting = tokio::spawn(async move { Publisher::connect(&s).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!connecting.is_finished(), "gave up on a settling topic");
    c.topic_error(TOPIC, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    connecting
        .await
        .unwrap()
        .expect("connects once the topic has a leader");
    drop(c);
}

/// A topic that never settles fails the preflight at its timeout, naming the error.
#[tokio::test]
async fn a_topic_without_a_leader_fails_the_preflight_in_time() {
    let c = cluster();
    c.topic_error(
        TOPIC,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    )
    .unwrap();
    let mut s = settings(&c);
    s.preflight_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let e = Publisher::connect(&s)
        .await
        .err()
        .expect("connect must fail");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains(TOPIC), "{e}");
    assert!(e.to_string().to_lowercase().contains("leader"), "{e}");
}
