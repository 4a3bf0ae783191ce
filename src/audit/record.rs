//! One record under this cluster's key, checked against what this job would produce.

use crate::kafka::cloudevents;
use crate::message::{self, IdFormat, KafkaMessage, MessageSettings};
use crate::window::HourWindow;

/// The most parts an hour of ours has: one namespace per part at the smallest
/// `--max-message-bytes` is far fewer. A record claiming more (our key and id are public and
/// deterministic, so anyone can write one) is not ours, and its count is never allocated.
pub(super) const MAX_PARTS: usize = 1_000_000;

/// Whether a header names the record: consumers read these to tell events apart.
fn is_identity(key: &str) -> bool {
    key == "message_id" || key == "part" || key.starts_with("ce_")
}

/// The identity headers of a record (`message_id`, `part`, the CloudEvents `ce_*`), each once
/// and readable: Kafka allows a header key several times, and consumers differ in which copy
/// they read (Java's `Headers.lastHeader` and header-to-map mappers keep the last, this audit
/// the first), so a record whose copies differ is one event to some and another to others; a
/// value that is not UTF-8 (or null) reads as absent to some. Either is not a record we write:
/// `Err` names the header.
pub(super) fn check_identity_headers(headers: &[(&str, Option<&[u8]>)]) -> Result<(), String> {
    for (i, (key, value)) in headers.iter().enumerate() {
        if !is_identity(key) {
            continue;
        }
        if headers[..i].iter().any(|(k, _)| k == key) {
            return Err(format!(
                "the `{}` header appears more than once: consumers that keep the last value \
                 (Java's Headers.lastHeader) may read another identity than those that keep the \
                 first",
                shown(key).trim_matches('"')
            ));
        }
        match value {
            None => {
                return Err(format!(
                    "the `{}` header has no value",
                    shown(key).trim_matches('"')
                ));
            }
            Some(v) if std::str::from_utf8(v).is_err() => {
                return Err(format!(
                    "the `{}` header's value is not UTF-8 ({} bytes)",
                    shown(key).trim_matches('"'),
                    v.len()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// What a record of ours says about itself, once checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Checked {
    pub(super) part: usize,
    pub(super) parts: usize,
    /// The first and last `external_id` of its payload (`None`: an empty payload).
    pub(super) first: Option<String>,
    pub(super) last: Option<String>,
}

/// One record under this cluster's key prefix, checked against what we would produce: the
/// `part` and `message_id` headers, the MCMP contract ([`message::validate`], the same check a
/// run makes before sending), the CloudEvents headers when it has any ([`cloudevents::check`]),
/// this job's header fields, and namespaces in order, each once, with quantities rounded as we
/// round them. `Ok`, or why it is not ours.
pub(super) fn check_record(
    expected: &MessageSettings,
    window: &HourWindow,
    key: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> Result<Checked, String> {
    let (cluster, id_format) = (expected.cluster_name.as_str(), expected.id_format);
    let header = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let (message_id, part) = (header("message_id"), header("part"));
    let part_header = part.ok_or("no `part` header")?;
    let (k, n) = part_header
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| *k >= 1 && k <= n && *n <= MAX_PARTS)
        .ok_or_else(|| {
            format!("`part` header {part_header:?} is not k/n with 1 <= k <= n <= {MAX_PARTS}")
        })?;
    let id = message_id.ok_or("no `message_id` header")?;
    let expected_id = id_format.id(cluster, window, k - 1);
    if id != expected_id {
        let other = match id_format {
            IdFormat::Uuid => IdFormat::Legacy,
            IdFormat::Legacy => IdFormat::Uuid,
        };
        let hint = if id == other.id(cluster, window, k - 1) {
            format!(
                " (it is the {other} id of that part: audit with --message-id-format {other} \
                 the hours published so)"
            )
        } else {
            String::new()
        };
        return Err(format!(
            "`message_id` header {id} is not the id of part {k} of this hour ({expected_id}){hint}"
        ));
    }
    let body: KafkaMessage = serde_json::from_slice(payload)
        .map_err(|e| format!("part {k}: the payload is not an MCMP message: {e}"))?;
    if body.header.message_id != id {
        return Err(format!(
            "part {k}: the payload's message_id {} differs from its header's {id}",
            body.header.message_id
        ));
    }
    let start = message::start_ts(window);
    if body.header.consumption_start_ts != start {
        return Err(format!(
            "part {k}: consumption_start_ts {} is not the key's hour {start}",
            body.header.consumption_start_ts
        ));
    }
    message::validate(&body, cluster, id_format)
        .map_err(|reason| format!("part {k}: breaks the MCMP contract: {reason}"))?;
    cloudevents::check(
        headers.iter().map(|(k, _)| *k),
        header,
        cluster,
        window,
        key,
        id,
    )
    .map_err(|reason| format!("part {k}: {reason}"))?;
    for (field, flag, got, want) in [
        (
            "service_name",
            "--service-name",
            &body.header.service_name,
            &expected.service_name,
        ),
        (
            "service_version",
            "--service-version",
            &body.header.service_version,
            &expected.service_version,
        ),
        (
            "service_location",
            "--service-location",
            &body.header.service_location,
            &expected.service_location,
        ),
    ] {
        if got != want {
            return Err(format!(
                "part {k}: {field} {got:?} is not this job's {want:?} ({flag})"
            ));
        }
    }
    // We shape namespaces in order (a sorted map), so each message's are ascending and each
    // part's come after the previous part's (checked across parts by `judge`).
    if let Some(pair) = body
        .payload
        .windows(2)
        .find(|w| w[0].external_id >= w[1].external_id)
    {
        return Err(format!(
            "part {k}: external_id {} comes after {}: not in the order we write (a namespace \
             listed twice, or entries rearranged)",
            pair[1].external_id, pair[0].external_id
        ));
    }
    for e in &body.payload {
        if let Some((dim, q)) = e
            .consumption
            .named_quantities()
            .find(|(_, q)| message::round(*q) != *q)
        {
            return Err(format!(
                "part {k}: {} {dim} is {q}, with more than {} decimals: not rounded as we round",
                e.external_id,
                message::DECIMALS
            ));
        }
    }
    Ok(Checked {
        part: k,
        parts: n,
        first: body.payload.first().map(|e| e.external_id.clone()),
        last: body.payload.last().map(|e| e.external_id.clone()),
    })
}

/// A key someone else wrote, for the report: at most 120 characters, quoted with control
/// characters escaped (it must not forge report lines or reach a terminal raw).
pub(super) fn shown(key: &str) -> String {
    let cut: String = key.chars().take(120).collect();
    format!("{cut:?}")
}
