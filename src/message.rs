//! The MCMP KafkaMessage: header + payload, shaped from one hour of usage, rounded, with a
//! deterministic message id, and split into parts that each fit the broker's size limit.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::usage::{HourUsage, NamespaceUsage, is_billable, is_namespace_name};
use crate::window::HourWindow;

/// The header fields and limits of the MCMP messages.
#[derive(Debug, Clone)]
pub struct MessageSettings {
    pub cluster_name: String,
    pub service_name: String,
    pub service_version: String,
    pub service_location: String,
    pub max_message_bytes: usize,
    pub id_format: IdFormat,
}

/// Decimal places of every quantity in a message.
pub const DECIMALS: i32 = 6;

/// Namespace of the name-based (v5) message ids. Changing it changes every id: never do.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_1f4e_3c57_4b8e_9a0e_2d4b_c0a5_7e11);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaMessage {
    pub header: Header,
    pub payload: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub consumption_period_type: PeriodType,
    pub consumption_start_ts: String,
    pub message_id: String,
    pub service_name: String,
    pub service_version: String,
    pub service_location: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PeriodType {
    Hour,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub external_id: String,
    pub consumption: Consumption,
}

/// Quantities of one namespace-hour: core-hours, GPU-hours and GiB-hours, rounded to
/// [`DECIMALS`] places. The usage's own type, so the message carries every [`Dimension`](crate::usage::Dimension).
pub type Consumption = NamespaceUsage;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(
        "the entry of {external_id} alone is {bytes} bytes with its header, over \
         --max-message-bytes {limit}; raise the limit"
    )]
    EntryTooLarge {
        external_id: String,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "the message of {window} breaks the MCMP contract: {reason}; nothing was sent for this \
         hour. Check the value named (a metric or a setting)"
    )]
    Contract { window: String, reason: String },
    #[error("could not serialize the message of {window}: {source}")]
    Serialize {
        window: String,
        source: serde_json::Error,
    },
}

pub type Result<T, E = MessageError> = std::result::Result<T, E>;

/// `x` rounded half away from zero to [`DECIMALS`] places, never `-0`.
pub fn round(x: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    let r = (x * scale).round() / scale;
    if r == 0.0 { 0.0 } else { r }
}

/// `2026-11-22T10:00:00.000000+00:00`, the form MCMP expects.
pub fn start_ts(window: &HourWindow) -> String {
    window
        .start()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

/// The shape of `message_id`. Both are functions of cluster, hour and part only: a re-publish
/// carries the same id, and ids of different clusters or parts differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum IdFormat {
    /// A name-based (v5) UUID: `0b9f3c1e-…`.
    #[default]
    Uuid,
    /// The Go CronJob's shape, `2026-11-22-10:00:<digits>`, for a billing side that parses it.
    /// The Go job put the run's wall-clock epoch seconds after the hour; here the digits are
    /// 63 bits of the v5 UUID, so they are not a time.
    Legacy,
}

impl IdFormat {
    /// The id of part `part` (0-based) of `cluster`'s message for `window`.
    pub fn id(self, cluster: &str, window: &HourWindow, part: usize) -> String {
        let name = format!(
            "consumption-metrics/v1/{cluster}/{}/{part}",
            start_ts(window)
        );
        let uuid = Uuid::new_v5(&ID_NAMESPACE, name.as_bytes());
        match self {
            IdFormat::Uuid => uuid.to_string(),
            IdFormat::Legacy => {
                // The UUID's first 8 bytes, masked to 63 bits so that a parser reading an
                // int64 accepts them: 59 bits vary (byte 6 holds the constant version nibble),
                // so two ids of one hour collide with odds of about 1e-18 per pair.
                let bits = u64::from_be_bytes(uuid.as_bytes()[..8].try_into().expect("8 bytes"))
                    & (u64::MAX >> 1);
                format!("{}:{bits}", window.start().format("%Y-%m-%d-%H:00"))
            }
        }
    }

    /// Whether `id` has this format's shape (for [`validate`]; the value is checked by the
    /// audit, which knows the part).
    pub fn accepts(self, id: &str) -> bool {
        match self {
            IdFormat::Uuid => Uuid::parse_str(id)
                .is_ok_and(|u| u.get_version_num() == 5 && u.hyphenated().to_string() == id),
            IdFormat::Legacy => {
                let b = id.as_bytes();
                let digits = |r: std::ops::Range<usize>| {
                    b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
                };
                b.len() > 17
                    && digits(0..4)
                    && b[4] == b'-'
                    && digits(5..7)
                    && b[7] == b'-'
                    && digits(8..10)
                    && b[10] == b'-'
                    && digits(11..13)
                    && &b[13..17] == b":00:"
                    && digits(17..b.len())
                    && id[17..].parse::<i64>().is_ok()
            }
        }
    }
}

impl std::fmt::Display for IdFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdFormat::Uuid => "uuid",
            IdFormat::Legacy => "legacy",
        })
    }
}

/// The id of part `part` (0-based) of `cluster`'s message for `window` in the default
/// format: a v5 UUID of the three.
pub fn message_id(cluster: &str, window: &HourWindow, part: usize) -> String {
    IdFormat::Uuid.id(cluster, window, part)
}

/// The messages of one hour: entries sorted by namespace, split so that each serialized
/// message fits `max_message_bytes`.
pub fn shape(hour: &HourUsage, config: &MessageSettings) -> Result<Vec<KafkaMessage>> {
    let window = hour.window;
    let entries: Vec<Entry> = hour
        .namespaces
        .iter()
        .map(|(ns, usage)| Entry {
            external_id: format!("{}_{ns}", config.cluster_name),
            consumption: usage.rounded(round),
        })
        .collect();
    let header = |part: usize| Header {
        consumption_period_type: PeriodType::Hour,
        consumption_start_ts: start_ts(&window),
        message_id: config.id_format.id(&config.cluster_name, &window, part),
        service_name: config.service_name.clone(),
        service_version: config.service_version.clone(),
        service_location: config.service_location.clone(),
    };
    let serialize_err = |source| MessageError::Serialize {
        window: window.to_string(),
        source,
    };
    // Size of a message with an empty payload, with the longest id a part may have: UUIDs
    // are all 36 characters, legacy ids (`YYYY-MM-DD-HH:00:<bits>`) up to 36, as short as 18
    // for part 0 when its bits are few, so part 0's header alone would undercount the others.
    let first = header(0);
    let id_slack = LONGEST_ID.saturating_sub(first.message_id.len());
    let empty = json_len(&KafkaMessage {
        header: first,
        payload: Vec::new(),
    })
    .map_err(serialize_err)?
        + id_slack;

    let mut parts: Vec<Vec<Entry>> = vec![Vec::new()];
    let mut size = empty;
    for entry in entries {
        let bytes = json_len(&entry).map_err(serialize_err)?;
        if empty + bytes > config.max_message_bytes {
            return Err(MessageError::EntryTooLarge {
                external_id: entry.external_id,
                bytes: empty + bytes,
                limit: config.max_message_bytes,
            });
        }
        let current = parts.last_mut().expect("parts is never empty");
        // A comma separates entries after the first.
        let added = bytes + usize::from(!current.is_empty());
        if size + added > config.max_message_bytes {
            parts.push(vec![entry]);
            size = empty + bytes;
        } else {
            current.push(entry);
            size += added;
        }
    }
    let messages: Vec<KafkaMessage> = parts
        .into_iter()
        .enumerate()
        .map(|(i, payload)| KafkaMessage {
            header: header(i),
            payload,
        })
        .collect();
    for m in &messages {
        validate(m, &config.cluster_name, config.id_format).map_err(|reason| {
            MessageError::Contract {
                window: window.to_string(),
                reason,
            }
        })?;
    }
    Ok(messages)
}

/// Whether `s` is safe as a header value of the contract: non-empty, no control characters.
fn printable(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

/// The MCMP contract (schema/mcmp-message.schema.json) checked on a message before it leaves:
/// what the schema says, in code, so that no input we do not control (a metric, a label, a
/// setting) can make us publish a message the billing side rejects or misreads.
pub fn validate(
    m: &KafkaMessage,
    cluster: &str,
    id_format: IdFormat,
) -> std::result::Result<(), String> {
    let h = &m.header;
    let ts = h.consumption_start_ts.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| ts.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !(ts.len() == 32
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && digits(11..13)
        && h.consumption_start_ts.ends_with(":00:00.000000+00:00"))
    {
        return Err(format!(
            "consumption_start_ts {:?} is not an hour in the form 2026-11-22T10:00:00.000000+00:00",
            h.consumption_start_ts
        ));
    }
    if !id_format.accepts(&h.message_id) {
        return Err(format!(
            "message_id {:?} is not of --message-id-format {id_format}",
            h.message_id
        ));
    }
    for (field, value) in [
        ("service_name", &h.service_name),
        ("service_version", &h.service_version),
        ("service_location", &h.service_location),
    ] {
        if !printable(value) {
            return Err(format!(
                "{field} {value:?} is empty or has control characters"
            ));
        }
    }
    let prefix = format!("{cluster}_");
    let mut listed = std::collections::HashSet::with_capacity(m.payload.len());
    for e in &m.payload {
        if !listed.insert(e.external_id.as_str()) {
            return Err(format!(
                "external_id {:?} is listed twice: it would be billed twice",
                e.external_id
            ));
        }
        let namespace = e.external_id.strip_prefix(&prefix);
        if !namespace.is_some_and(is_namespace_name) {
            return Err(format!(
                "external_id {:?} is not <cluster>_<namespace> with a Kubernetes namespace name",
                e.external_id
            ));
        }
        if let Some(key) = e
            .consumption
            .gpu_models
            .keys()
            .find(|k| !crate::usage::is_model_key(k))
        {
            return Err(format!(
                "{} has the key {key:?}, which is neither a dimension nor gpu_<model suffix>",
                e.external_id
            ));
        }
        for (dim, q) in e.consumption.named_quantities() {
            if !is_billable(q) {
                // 1e300 as 1e300, not as 301 digits.
                let shown = if q.abs() >= 1e15 {
                    format!("{q:e}")
                } else {
                    q.to_string()
                };
                return Err(format!("{} {dim} is {shown}", e.external_id));
            }
        }
    }
    Ok(())
}

/// The bytes of `value` as compact JSON, counted as it is written, never held.
pub(crate) fn json_len<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<usize> {
    struct Counted(usize);
    impl std::io::Write for Counted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counted = Counted(0);
    serde_json::to_writer(&mut counted, value)?;
    Ok(counted.0)
}

/// The longest `message_id` of either format: a UUID (36), or a legacy id's 17 characters of
/// hour and up to 19 digits of a 63-bit number.
const LONGEST_ID: usize = 36;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use std::collections::BTreeMap;

    fn window() -> HourWindow {
        let t: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
        HourWindow::starting_at(t, "x").unwrap()
    }
    fn config(max: usize) -> MessageSettings {
        MessageSettings {
            cluster_name: "prod-alln-01".into(),
            service_name: "OPENSHIFT".into(),
            service_version: "GA".into(),
            service_location: "ALLN".into(),
            max_message_bytes: max,
            id_format: IdFormat::Uuid,
        }
    }
    fn hour(n: usize) -> HourUsage {
        HourUsage {
            window: window(),
            namespaces: (0..n)
                .map(|i| {
                    (
                        format!("team-{i:05}"),
                        NamespaceUsage {
                            cpu: 0.5 + i as f64,
                            gpu: 0.0,
                            storage_rwo_standard: 10.0 / 3.0,
                            ..Default::default()
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// Whatever reaches shaping, nothing that breaks the contract leaves it.
    #[test]
    fn messages_breaking_the_contract_are_never_shaped() {
        for (ns, cpu) in [
            ("team-a", 1e305),
            ("team-a", f64::NAN),
            ("Team A", 1.0),
            ("a\"b", 1.0),
        ] {
            let mut h = hour(0);
            h.namespaces.insert(
                ns.into(),
                NamespaceUsage {
                    cpu,
                    ..Default::default()
                },
            );
            let e = shape(&h, &config(900_000)).unwrap_err();
            assert!(
                matches!(e, MessageError::Contract { .. }),
                "{ns} {cpu}: {e}"
            );
        }
        let mut c = config(900_000);
        c.service_location = "AL\nLN".into();
        let e = shape(&hour(1), &c).unwrap_err();
        assert!(e.to_string().contains("service_location"), "{e}");
        for m in shape(&hour(50), &config(2_000)).unwrap() {
            validate(&m, "prod-alln-01", IdFormat::Uuid).unwrap();
            assert!(validate(&m, "prod-alln-01", IdFormat::Legacy).is_err());
        }
    }

    #[test]
    fn rounding_is_six_places_without_negative_zero() {
        assert_eq!(round(1.4999999999999996), 1.5);
        assert_eq!(round(10.0 / 3.0), 3.333333);
        assert_eq!(round(0.0000004), 0.0);
        assert_eq!(round(-0.0000004).to_string(), "0");
        assert_eq!(round(2.0000005), 2.000001);
    }

    #[test]
    fn start_ts_has_microseconds_and_offset() {
        assert_eq!(start_ts(&window()), "2026-11-22T10:00:00.000000+00:00");
    }

    #[test]
    fn message_ids_are_deterministic_and_distinct() {
        let w = window();
        assert_eq!(message_id("a", &w, 0), message_id("a", &w, 0));
        assert_ne!(message_id("a", &w, 0), message_id("b", &w, 0));
        assert_ne!(message_id("a", &w, 0), message_id("a", &w, 1));
        assert_ne!(message_id("a", &w, 0), message_id("a", &w.next(), 0));
        // Pinned: a change here would make the billing side count re-published hours twice.
        assert_eq!(
            message_id("a", &w, 0),
            "86bc6988-2aa9-5958-8049-8cdc3d0c47e9"
        );
    }

    /// The Go job's shape, derived from cluster, hour and part only.
    #[test]
    fn legacy_ids_keep_the_go_shape_and_are_deterministic_and_distinct() {
        let w = window();
        let id = |c, w: &HourWindow, p| IdFormat::Legacy.id(c, w, p);
        assert_eq!(id("a", &w, 0), id("a", &w, 0));
        assert_ne!(id("a", &w, 0), id("b", &w, 0));
        assert_ne!(id("a", &w, 0), id("a", &w, 1));
        assert_ne!(id("a", &w, 0), id("a", &w.next(), 0));
        // Pinned like the UUIDs.
        assert_eq!(id("a", &w, 0), "2026-11-22-10:00:485378893401381208");
        assert!(IdFormat::Legacy.accepts(&id("a", &w, 0)));
        assert!(IdFormat::Legacy.accepts("2019-06-04-17:00:1559667612"));
        for bad in [
            "2019-06-04-17:00:",
            "2019-06-04-17:30:1559667612",
            "2019-06-04T17:00:1559667612",
            "2019-06-04-17:00:99999999999999999999",
            "2019-06-04-17:00:-1",
            "2019-06-04-17:00:1e9",
        ] {
            assert!(!IdFormat::Legacy.accepts(bad), "{bad}");
        }
        let mut c = config(2_000);
        c.id_format = IdFormat::Legacy;
        let msgs = shape(&hour(50), &c).unwrap();
        let mut ids = std::collections::HashSet::new();
        for (part, m) in msgs.iter().enumerate() {
            assert_eq!(m.header.message_id, id("prod-alln-01", &w, part));
            assert!(ids.insert(m.header.message_id.clone()));
            validate(m, "prod-alln-01", IdFormat::Legacy).unwrap();
        }
    }

    #[test]
    fn one_message_snapshot() {
        let msgs = shape(&hour(2), &config(900_000)).unwrap();
        assert_eq!(msgs.len(), 1);
        insta::assert_json_snapshot!(msgs);
    }

    #[test]
    fn large_hours_are_split_under_the_limit() {
        let h = hour(20_000);
        let msgs = shape(&h, &config(900_000)).unwrap();
        assert!(msgs.len() > 1);
        let mut seen = 0;
        let mut ids = std::collections::HashSet::new();
        for m in &msgs {
            let bytes = serde_json::to_vec(m).unwrap().len();
            assert!(bytes <= 900_000, "{bytes}");
            assert_eq!(
                m.header.consumption_start_ts,
                msgs[0].header.consumption_start_ts
            );
            assert!(ids.insert(m.header.message_id.clone()));
            seen += m.payload.len();
        }
        assert_eq!(seen, 20_000);
        // Parts are filled: all but the last are close to the limit.
        let first = serde_json::to_vec(&msgs[0]).unwrap().len();
        assert!(first > 899_000, "{first}");
    }

    /// Legacy ids differ in length between parts: every part stays within the limit anyway
    /// (they once ended up a byte or more over it when part 0's id was the shorter one).
    #[test]
    fn legacy_id_parts_stay_under_the_limit() {
        let mut short_first = 0;
        for h in 0..24 {
            let mut usage = hour(40);
            let start: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().unwrap();
            usage.window =
                HourWindow::starting_at(start + chrono::TimeDelta::hours(h), "x").unwrap();
            for max in 850..950 {
                let config = MessageSettings {
                    id_format: IdFormat::Legacy,
                    ..config(max)
                };
                let msgs = shape(&usage, &config).unwrap();
                short_first += usize::from(msgs[0].header.message_id.len() < LONGEST_ID);
                for m in &msgs {
                    let bytes = serde_json::to_vec(m).unwrap().len();
                    assert!(bytes <= max, "{bytes} > {max} ({})", m.header.message_id);
                }
            }
        }
        assert!(
            short_first > 0,
            "no hour whose part 0 has a short id: the test proves nothing"
        );
    }

    #[test]
    fn an_entry_over_the_limit_is_an_error() {
        let e = shape(&hour(1), &config(200)).unwrap_err();
        assert!(e.to_string().contains("--max-message-bytes 200"), "{e}");
    }
}
