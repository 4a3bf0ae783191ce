//! Every librdkafka setting, written in one place: the producer's by [`to_rdkafka`], the
//! audit's read-only consumer's by [`to_rdkafka_consumer`]; both share [`set_tls`].

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;

/// The PEM files of mutual TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the connection to the brokers is secured.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Mutual TLS with these files: the only transport the command line can build.
    MutualTls(TlsFiles),
    /// Plaintext, for librdkafka's in-process mock cluster in the fault-injection tests, which
    /// speaks no TLS. Compiled only with the `test-hooks` feature (never in the image); no flag
    /// or variable selects it.
    #[cfg(feature = "test-hooks")]
    PlaintextMockCluster,
}

impl Transport {
    /// The TLS files, when there are any.
    pub fn tls(&self) -> Option<&TlsFiles> {
        match self {
            Transport::MutualTls(files) => Some(files),
            #[cfg(feature = "test-hooks")]
            Transport::PlaintextMockCluster => None,
        }
    }
}

/// How to reach the brokers.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic: String,
    /// Always mutual TLS from the command line.
    pub transport: Transport,
    /// Validated extra properties (`--kafka-property`).
    pub properties: Vec<(String, String)>,
    /// Largest message we produce; librdkafka's own limit is set just above it.
    pub max_message_bytes: usize,
    /// How long a message may wait for its acknowledgement.
    pub delivery_timeout: Duration,
    /// How long the metadata preflight may take.
    pub preflight_timeout: Duration,
    /// Write the CloudEvents attributes ([`super::cloudevents`]) on every record.
    pub cloudevents: bool,
}

/// Keys the job sets from its own flags, with every alias librdkafka accepts for them
/// (librdkafka's CONFIGURATION.md, "Alias for ..."), and the other ways to give the same TLS
/// material: overriding any of them would bypass a check (the PEM pre-check, the size split,
/// the delivery budget) or make which value wins depend on librdkafka's order.
const OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "--kafka-brokers"),
    ("metadata.broker.list", "--kafka-brokers"),
    (
        "security.protocol",
        "--kafka-ca/--kafka-cert/--kafka-key (always ssl)",
    ),
    ("ssl.ca.location", "--kafka-ca"),
    ("ssl.ca.pem", "--kafka-ca"),
    ("ssl_ca", "--kafka-ca"),
    ("ssl.ca.certificate.stores", "--kafka-ca"),
    ("ssl.certificate.location", "--kafka-cert"),
    ("ssl.certificate.pem", "--kafka-cert"),
    ("ssl_certificate", "--kafka-cert"),
    (
        "ssl.keystore.location",
        "--kafka-cert/--kafka-key (PEM files)",
    ),
    (
        "ssl.keystore.password",
        "--kafka-cert/--kafka-key (PEM files)",
    ),
    ("ssl.key.location", "--kafka-key"),
    ("ssl.key.pem", "--kafka-key"),
    ("ssl_key", "--kafka-key"),
    (
        "ssl.key.password",
        "--kafka-key (an unencrypted PEM key, kept in a Secret)",
    ),
    ("message.max.bytes", "--max-message-bytes"),
    ("message.timeout.ms", "--kafka-delivery-timeout"),
    ("delivery.timeout.ms", "--kafka-delivery-timeout"),
];

/// Whether a property's value may be a secret, so that it is never printed.
pub fn is_secret(key: &str) -> bool {
    [
        "password",
        "passwd",
        "secret",
        "pem",
        "ssl_key",
        "sasl.",
        "token",
        "credentials",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// `key=value` for messages, with the value of a secret key hidden.
fn shown(key: &str, value: &str) -> String {
    if is_secret(key) {
        format!("{key}=<hidden>")
    } else {
        format!("{key}={value}")
    }
}

/// Why a property is refused, if it is: it would weaken delivery or a TLS check, or use an
/// authentication other than mutual TLS.
fn refusal(key: &str, value: &str) -> Option<&'static str> {
    match key {
        "acks" | "request.required.acks" => (!matches!(value, "all" | "-1"))
            .then_some("only acks=all keeps an hour safe when a broker fails"),
        "enable.idempotence" => {
            (value != "true").then_some("idempotence keeps retries from duplicating a message")
        }
        "enable.ssl.certificate.verification" => {
            (value != "true").then_some("the brokers' certificates must be verified")
        }
        "ssl.endpoint.identification.algorithm" => (value != "https")
            .then_some("the brokers' host names must be checked against their certificates"),
        "ssl.cipher.suites" => value
            .split(':')
            .any(|c| !c.starts_with(['!', '-']) && c.to_ascii_uppercase().contains("NULL"))
            .then_some("NULL cipher suites send billing data unencrypted or unauthenticated"),
        "ssl.certificate.verify_cb" | "ssl_engine_callback_data" | "ssl.engine.location" => {
            Some("the job verifies certificates with OpenSSL's own checks only")
        }
        // librdkafka loads these as native code into the job's process (plugins' interceptors
        // see every message; OpenSSL providers every key).
        "plugin.library.paths" | "ssl.providers" | "ssl.engine.id" => {
            Some("it loads native code into the producer; the job runs only its own code")
        }
        "retries" | "message.send.max.retries" => {
            (value == "0").then_some("without retries a transient error loses the hour")
        }
        "transactional.id" => Some("the job does not use transactions"),
        k if k.starts_with("sasl.") => {
            Some("the job authenticates with mutual TLS only (--kafka-cert/--kafka-key)")
        }
        _ => None,
    }
}

impl KafkaSettings {
    /// `text` (librdkafka's error, which may quote a property's value) with the value of every
    /// `--kafka-property` replaced: a mistyped secret key (`ssl.key.passwd=…`) is not one
    /// [`is_secret`] knows, and its value must not reach the log either.
    pub fn scrub(&self, mut text: String) -> String {
        for (_, value) in self.properties.iter().filter(|(_, v)| v.len() >= 4) {
            text = text.replace(value.as_str(), "<hidden>");
        }
        text
    }
}

/// Parse `--kafka-property KEY=VALUE` items, refusing those that would break the promise that
/// an acknowledged hour is durably stored exactly once over verified mutual TLS. Errors name
/// the key, never a secret value.
pub fn parse_properties(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, item) in raw.iter().filter(|s| !s.trim().is_empty()).enumerate() {
        let Some((key, value)) = item.split_once('=') else {
            // The text may be part of a secret split at a comma: do not print it.
            return Err(format!(
                "item {} is not KEY=VALUE (its text is not shown, in case it is a secret); \
                 write e.g. linger.ms=50",
                i + 1
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some((_, flag)) = OWNED.iter().find(|(k, _)| *k == key) {
            return Err(format!("{key} is set by {flag}; use that instead"));
        }
        if let Some(reason) = refusal(key, value) {
            return Err(format!("{} is refused: {reason}", shown(key, value)));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(format!(
                "{key} is given twice; give it once so that which value wins is clear"
            ));
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// What every client the job creates shares: the brokers, its name, the connection timeout
/// and mutual TLS. The operator's `--kafka-property` settings are applied last by
/// [`with_properties`].
fn client(s: &KafkaSettings, name: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.brokers)
        .set("client.id", format!("{name}/{}", env!("CARGO_PKG_VERSION")))
        // Fail a dead address quickly instead of after the 30 s default.
        .set("socket.connection.setup.timeout.ms", "10000");
    set_tls(&mut c, s);
    c
}

/// The operator's extra settings (validated: none overrides a key the job owns), for the
/// producer and, like `broker.address.family`, for the audit's consumer too (librdkafka's
/// consumer ignores producer-only keys with a log line).
fn with_properties(mut c: ClientConfig, s: &KafkaSettings) -> ClientConfig {
    for (k, v) in &s.properties {
        c.set(k, v);
    }
    c
}

/// The producer configuration: every key the job sets, each with why.
pub fn to_rdkafka(s: &KafkaSettings) -> ClientConfig {
    let mut c = client(s, "consumption-metrics");
    // An hour counts as published only when every in-sync replica has it.
    c.set("acks", "all")
        // Retries after a lost acknowledgement never duplicate or reorder a message.
        .set("enable.idempotence", "true")
        // Billing JSON compresses several-fold; lz4 is built into librdkafka (no extra C
        // library) and every broker supports it.
        .set("compression.type", "lz4")
        // Bounds how long one run waits for an acknowledgement before it stops.
        .set(
            "message.timeout.ms",
            s.delivery_timeout.as_millis().to_string(),
        )
        // Our parts are at most max_message_bytes of JSON; leave room for key, headers and
        // batch overhead so librdkafka never refuses a part we sized.
        .set(
            "message.max.bytes",
            (s.max_message_bytes + 64 * 1024).to_string(),
        )
        // Reconnect promptly after a broker comes back.
        .set("reconnect.backoff.max.ms", "2000");
    with_properties(c, s)
}

/// The admin client of `check`: reads the topic's configuration (DescribeConfigs), never
/// writes. No producer keys: an idempotent handle would ask the brokers for a producer id.
pub fn to_rdkafka_admin(s: &KafkaSettings) -> ClientConfig {
    with_properties(client(s, "consumption-metrics-check"), s)
}

/// Mutual TLS, the same for every client the job creates.
fn set_tls(c: &mut ClientConfig, s: &KafkaSettings) {
    match &s.transport {
        Transport::MutualTls(tls) => {
            c.set("security.protocol", "ssl")
                .set("ssl.ca.location", tls.ca.display().to_string())
                .set("ssl.certificate.location", tls.cert.display().to_string())
                .set("ssl.key.location", tls.key.display().to_string())
                // Check the broker's name against its certificate.
                .set("ssl.endpoint.identification.algorithm", "https");
        }
        #[cfg(feature = "test-hooks")]
        Transport::PlaintextMockCluster => {
            c.set("security.protocol", "plaintext");
        }
    }
}

/// `consumption-metrics-audit-<pid>-<nanoseconds>`: unique per audit run.
fn audit_group_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("consumption-metrics-audit-{}-{nanos}", std::process::id())
}

/// The audit's consumer: reads partitions it assigns itself, from offsets it looks up by
/// time. It never joins a consumer group (manual assignment sends no JoinGroup, so it cannot
/// take partitions from a billing consumer) and never commits.
pub fn to_rdkafka_consumer(s: &KafkaSettings) -> ClientConfig {
    let mut c = client(s, "consumption-metrics-audit");
    // librdkafka refuses a manual assignment without a group id ("Unknown group"). A new one
    // per audit can never be the id of a billing consumer's group, and is never joined or
    // committed to.
    c.set("group.id", audit_group_id())
        // Never commit, even by accident: there is no group, and the audit must not move any
        // consumer's position.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // The end of each partition is reported, so the audit knows when it has read all.
        .set("enable.partition.eof", "true")
        // Each fetch may carry a whole hour of parts (--max-message-bytes each).
        .set(
            "fetch.message.max.bytes",
            (s.max_message_bytes + 64 * 1024).to_string(),
        );
    with_properties(c, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(items: &[&str]) -> Result<Vec<(String, String)>, String> {
        parse_properties(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn harmless_properties_pass() {
        assert_eq!(
            props(&["linger.ms=50", "acks=all"]).unwrap(),
            vec![
                ("linger.ms".into(), "50".into()),
                ("acks".into(), "all".into())
            ]
        );
    }

    #[test]
    fn properties_that_break_delivery_are_refused() {
        for bad in [
            "acks=0",
            "acks=1",
            "enable.idempotence=false",
            "enable.ssl.certificate.verification=false",
            "retries=0",
            "bootstrap.servers=x:1",
            "security.protocol=plaintext",
            "noequals",
            // Aliases of keys other flags own (librdkafka's CONFIGURATION.md).
            "metadata.broker.list=x:1",
            "delivery.timeout.ms=1",
            "ssl.ca.pem=-----BEGIN",
            "ssl_ca=x",
            "ssl.certificate.pem=x",
            "ssl.key.pem=x",
            "ssl.keystore.location=/k.p12",
            "ssl.key.password=x",
            // Weakened TLS checks.
            "ssl.endpoint.identification.algorithm=none",
            "ssl.endpoint.identification.algorithm=",
            "ssl.cipher.suites=eNULL",
            "ssl.engine.location=/x.so",
            // Native code loaded into the process.
            "plugin.library.paths=/tmp/evil.so",
            "ssl.providers=legacy",
            // Not mutual TLS.
            "sasl.mechanism=PLAIN",
            "sasl.password=hunter2",
        ] {
            assert!(props(&[bad]).is_err(), "{bad} was accepted");
        }
        let e = props(&["acks=0"]).unwrap_err();
        assert!(e.contains("acks=all"), "{e}");
        assert!(props(&["linger.ms=5", "linger.ms=6"]).is_err());
        assert!(props(&["ssl.cipher.suites=ECDHE+AESGCM:!aNULL:!eNULL"]).is_ok());
        assert!(props(&["ssl.endpoint.identification.algorithm=https"]).is_ok());
    }

    #[test]
    fn refusals_never_print_a_secret() {
        for bad in [
            vec!["sasl.password=hunter2"],
            vec!["linger.ms=5", "hunter2"],
            vec!["ssl.key.pem=hunter2"],
        ] {
            let e = props(&bad).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    /// librdkafka's refusal of a mistyped key quotes its value; the producer's error does not.
    #[cfg(feature = "test-hooks")]
    #[tokio::test]
    async fn a_mistyped_secret_key_is_not_echoed_by_librdkafka_errors() {
        let properties = props(&["ssl.key.passwd=hunter2-value"]).unwrap();
        let s = KafkaSettings {
            brokers: "127.0.0.1:1".into(),
            topic: "t".into(),
            transport: Transport::PlaintextMockCluster,
            properties,
            max_message_bytes: 900_000,
            delivery_timeout: Duration::from_secs(60),
            preflight_timeout: Duration::from_secs(1),
            cloudevents: true,
        };
        let Err(e) = crate::kafka::Publisher::connect(&s).await else {
            panic!("librdkafka accepted ssl.key.passwd");
        };
        let text = e.to_string();
        assert!(text.contains("ssl.key.passwd"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn overrides_come_last() {
        let s = KafkaSettings {
            brokers: "b:9093".into(),
            topic: "t".into(),
            transport: Transport::MutualTls(TlsFiles {
                ca: "/ca".into(),
                cert: "/c".into(),
                key: "/k".into(),
            }),
            properties: vec![("linger.ms".into(), "5".into())],
            max_message_bytes: 900_000,
            delivery_timeout: Duration::from_secs(60),
            preflight_timeout: Duration::from_secs(10),
            cloudevents: true,
        };
        let c = to_rdkafka(&s);
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(c.get("message.max.bytes"), Some("965536"));
        assert_eq!(c.get("linger.ms"), Some("5"));
    }
}
