//! The benchmark's baseline for publishing (scripts/bench.sh): librdkafka's producer, through
//! the same rdkafka crate and the same librdkafka build as the job, with nothing of the job —
//! no checks, no run report, no per-part headers. Sends every line of a file as one message,
//! waits for every acknowledgement, and prints the seconds that took on stdout.
//!
//!   plain-producer BROKERS TOPIC CA CERT KEY FILE
//!
//! Connection set-up (TLS handshake, metadata) is done before the clock starts, as the job's
//! own delivery time excludes its preflight.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic, ca, cert, key, file] = args.as_slice() else {
        return Err("usage: plain-producer BROKERS TOPIC CA CERT KEY FILE".into());
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca)
        .set("ssl.certificate.location", cert)
        .set("ssl.key.location", key)
        .set("broker.address.family", "v4")
        .set("message.max.bytes", "1000000")
        .create()?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let text = std::fs::read_to_string(file)?;
    let started = Instant::now();
    let deliveries: Vec<_> = text
        .lines()
        .map(|line| producer.send_result(FutureRecord::<(), str>::to(topic).payload(line)))
        .collect::<Result<_, _>>()
        .map_err(|(e, _)| e)?;
    for delivery in deliveries {
        delivery
            .await
            .map_err(|_| "the producer was dropped")?
            .map_err(|(e, _)| e)?;
    }
    println!("{:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
