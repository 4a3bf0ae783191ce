//! A real Kafka-protocol broker (tansu) behind a real mutual-TLS terminator (stunnel) on
//! 127.0.0.1, with a throwaway PKI, and an rdkafka consumer to read messages back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{free_port, server, stop};

pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file of the throwaway PKI.
pub struct Pki {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server: Pair,
    pub client: Pair,
    pub other_ca_client: Pair,
    pub expired_client: Pair,
}

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn cert(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    days: (i64, i64),
    server: bool,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_serial())
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    let now = chrono::Utc::now().timestamp();
    b.set_not_before(&Asn1Time::from_unix(now + days.0 * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + days.1 * 86_400).unwrap())
        .unwrap();
    match issuer {
        None => {
            b.set_issuer_name(&name).unwrap();
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.sign(key, MessageDigest::sha256()).unwrap();
        }
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name()).unwrap();
            if server {
                let san = SubjectAlternativeName::new()
                    .dns("localhost")
                    .ip("127.0.0.1")
                    .build(&b.x509v3_context(Some(ca), None))
                    .unwrap();
                b.append_extension(san).unwrap();
                b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
                    .unwrap();
            } else {
                b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
                    .unwrap();
            }
            b.sign(ca_key, MessageDigest::sha256()).unwrap();
        }
    }
    b.build()
}

fn rand_serial() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    (std::process::id() << 8) ^ N.fetch_add(1, Ordering::Relaxed)
}

fn write_pair(dir: &Path, name: &str, cert: &X509, key: &PKey<Private>) -> Pair {
    let pair = Pair {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pair.cert, cert.to_pem().unwrap()).unwrap();
    std::fs::write(&pair.key, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    pair
}

/// A CA, a server certificate for localhost/127.0.0.1, a client certificate, a client
/// certificate from another CA and an expired client certificate.
pub fn pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let (ca_key, other_key) = (key(), key());
    let ca = cert("test-ca", &ca_key, None, (-1, 3650), false);
    let other = cert("other-ca", &other_key, None, (-1, 3650), false);
    let write_ca = |name: &str, c: &X509| {
        let p = dir.join(name);
        std::fs::write(&p, c.to_pem().unwrap()).unwrap();
        p
    };
    let k = key();
    let server = write_pair(
        dir,
        "server",
        &cert("localhost", &k, Some((&ca, &ca_key)), (-1, 365), true),
        &k,
    );
    let k = key();
    let client = write_pair(
        dir,
        "client",
        &cert(
            "consumption-metrics",
            &k,
            Some((&ca, &ca_key)),
            (-1, 365),
            false,
        ),
        &k,
    );
    let k = key();
    let other_ca_client = write_pair(
        dir,
        "other-client",
        &cert("intruder", &k, Some((&other, &other_key)), (-1, 365), false),
        &k,
    );
    let k = key();
    let expired_client = write_pair(
        dir,
        "expired-client",
        &cert(
            "consumption-metrics",
            &k,
            Some((&ca, &ca_key)),
            (-30, -1),
            false,
        ),
        &k,
    );
    Pki {
        ca: write_ca("ca.pem", &ca),
        other_ca: write_ca("other-ca.pem", &other),
        server,
        client,
        other_ca_client,
        expired_client,
    }
}

/// The tansu binary: $TANSU_BIN, or where scripts/install-deps.sh puts it.
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return p.into();
    }
    let roots = super::tool_roots("TANSU_ROOT", "/opt/tansu", "tansu");
    roots
        .iter()
        .map(|r| r.join("bin/tansu"))
        .find(|b| b.exists())
        .unwrap_or_else(|| {
            panic!(
                "tansu is not installed (looked in {roots:?}); run `bash scripts/install-deps.sh`"
            )
        })
}

pub struct TestKafka {
    /// What clients use: the stunnel mTLS port, by the name in the server certificate.
    pub brokers: String,
    /// The broker's own plaintext listener, for administration only.
    pub plain: String,
    pub pki: Pki,
    pub dir: PathBuf,
    tls_port: u16,
    plain_port: u16,
    broker: Child,
    terminator: Option<Child>,
}

impl Drop for TestKafka {
    fn drop(&mut self) {
        self.stop_terminator();
        stop(&mut self.broker);
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start tansu on a plaintext loopback port and stunnel in front of it, requiring client
/// certificates signed by the test CA.
pub fn start_kafka(name: &str) -> TestKafka {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let pki = pki(&dir.join("pki"));
    let (plain, tls) = (free_port(), free_port());
    let log = |n: &str| std::fs::File::create(dir.join(n)).unwrap();
    let tansu = server(tansu_bin())
        .args(["broker", "--cluster-id", "test"])
        .arg(format!("--listener-url=tcp://127.0.0.1:{plain}"))
        // Metadata sends clients back to the TLS port, so reconnects stay on mTLS.
        .arg(format!("--advertised-listener-url=tcp://localhost:{tls}"))
        .arg("--storage-engine=memory://tansu/")
        .stdout(log("tansu.log"))
        .stderr(log("tansu.err"))
        .spawn()
        .expect("starting tansu");
    let mut kafka = TestKafka {
        brokers: format!("localhost:{tls}"),
        plain: format!("127.0.0.1:{plain}"),
        pki,
        dir,
        tls_port: tls,
        plain_port: plain,
        broker: tansu,
        terminator: None,
    };
    wait_for_port(plain, "tansu");
    kafka.start_terminator();
    kafka
}

impl TestKafka {
    /// Start stunnel in front of the broker on the TLS port, requiring client certificates
    /// signed by the test CA.
    pub fn start_terminator(&mut self) {
        assert!(
            self.terminator.is_none(),
            "the terminator is already running"
        );
        let conf = self.dir.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\noutput = {out}\n[kafka]\naccept = 127.0.0.1:{tls}\n\
                 connect = 127.0.0.1:{plain}\ncert = {cert}\nkey = {key}\nCAfile = {ca}\n\
                 requireCert = yes\nverifyChain = yes\nsslVersionMin = TLSv1.2\n",
                out = self.dir.join("stunnel.log").display(),
                tls = self.tls_port,
                plain = self.plain_port,
                cert = self.pki.server.cert.display(),
                key = self.pki.server.key.display(),
                ca = self.pki.ca.display(),
            ),
        )
        .unwrap();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stunnel.err"))
            .unwrap();
        let stunnel = server("stunnel4")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting stunnel4");
        self.terminator = Some(stunnel);
        wait_for_port(self.tls_port, "stunnel");
    }

    /// Stop the mTLS terminator: to clients the broker is gone, while its data stays.
    pub fn stop_terminator(&mut self) {
        if let Some(mut c) = self.terminator.take() {
            stop(&mut c);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_ok() {
            assert!(Instant::now() < deadline, "stunnel kept listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn create_topic(&self, topic: &str) {
        self.create_topic_with(topic, &[]);
    }

    /// [`Self::create_topic`] with topic configuration, e.g. `max.message.bytes`.
    pub fn create_topic_with(&self, topic: &str, config: &[(&str, &str)]) {
        let out = Command::new(tansu_bin())
            .args(["topic", "create", topic, "--partitions", "3"])
            .arg(format!("--broker=tcp://{}", self.plain))
            .args(config.iter().map(|(k, v)| format!("--config={k}={v}")))
            .output()
            .expect("tansu topic create");
        assert!(
            out.status.success(),
            "creating {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Flags that make the binary publish to this broker with the good client certificate.
    pub fn flags(&self, topic: &str) -> Vec<String> {
        vec![
            "--kafka-brokers".into(),
            self.brokers.clone(),
            "--kafka-topic".into(),
            topic.into(),
            "--kafka-ca".into(),
            self.pki.ca.display().to_string(),
            "--kafka-cert".into(),
            self.pki.client.cert.display().to_string(),
            "--kafka-key".into(),
            self.pki.client.key.display().to_string(),
            // `localhost` may resolve to ::1 first; stunnel listens on 127.0.0.1.
            "--kafka-property".into(),
            "broker.address.family=v4".into(),
        ]
    }

    /// [`Self::flags`] with the files of some flags replaced, e.g. another CA's certificate.
    pub fn flags_with(&self, topic: &str, replace: &[(&str, &Path)]) -> Vec<String> {
        let mut f = self.flags(topic);
        for (flag, path) in replace {
            let i = f.iter().position(|x| x == flag).expect("a flag of flags()");
            f[i + 1] = path.display().to_string();
        }
        f
    }

    /// A test client of this broker over mutual TLS with the good client certificate.
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            // `localhost` may resolve to ::1 first; stunnel listens on 127.0.0.1.
            .set("broker.address.family", "v4")
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", self.pki.ca.display().to_string())
            .set(
                "ssl.certificate.location",
                self.pki.client.cert.display().to_string(),
            )
            .set(
                "ssl.key.location",
                self.pki.client.key.display().to_string(),
            );
        c
    }

    /// Write one raw record over mTLS, as another producer (or a broken one) would: for
    /// injecting duplicates, conflicts and foreign messages. `timestamp_ms` sets the record's
    /// time (default: now).
    pub fn produce(
        &self,
        topic: &str,
        key: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
        timestamp_ms: Option<i64>,
    ) {
        let producer: BaseProducer = self
            .client_config()
            .set("message.timeout.ms", "10000")
            .create()
            .expect("creating the test producer");
        let mut owned = OwnedHeaders::new();
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record = BaseRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(owned);
        if let Some(ts) = timestamp_ms {
            record = record.timestamp(ts);
        }
        producer.send(record).map_err(|(e, _)| e).expect("queueing");
        producer
            .flush(Duration::from_secs(10))
            .expect("the test record was not acknowledged");
    }

    /// Write many raw records with one producer (`produce` opens a connection per record):
    /// (key, headers, payload), in order.
    pub fn produce_many(&self, topic: &str, records: &[RawRecord]) {
        let producer: BaseProducer = self
            .client_config()
            .set("message.timeout.ms", "30000")
            // One record per batch: tansu 0.6 reports a high watermark of one past a batch's
            // base offset, so records after the first of a batch lie beyond it and a reader
            // that stops at the watermark (the audit) never sees them.
            .set("batch.num.messages", "1")
            .create()
            .expect("creating the test producer");
        for (key, headers, payload) in records {
            let mut owned = OwnedHeaders::new();
            for (k, v) in headers {
                owned = owned.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                });
            }
            let mut record = BaseRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(owned);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, r)) => {
                        assert!(
                            matches!(
                                e,
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull
                                )
                            ),
                            "queueing: {e}"
                        );
                        producer.poll(Duration::from_millis(50));
                        record = r;
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("the test records were not acknowledged");
    }

    /// Every message on `topic` from the beginning, read over mTLS until `expected` arrived or
    /// `timeout` passed.
    pub fn consume(&self, topic: &str, expected: usize, timeout: Duration) -> Vec<Consumed> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", "consumption-metrics-tests")
            .set("enable.auto.commit", "false")
            .create()
            .expect("creating the test consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < expected && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Consumed {
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    headers,
                    payload: m.payload().unwrap_or_default().to_vec(),
                });
            }
        }
        // Anything beyond `expected` would be a duplicate: look a little longer for it.
        let settle = Instant::now() + Duration::from_secs(1);
        while Instant::now() < settle {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push(Consumed {
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    headers: Vec::new(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                });
            }
        }
        out
    }
}

/// A record to write as it is: (key, headers, payload).
pub type RawRecord = (String, Vec<(String, String)>, Vec<u8>);

#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}
