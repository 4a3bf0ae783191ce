//! The Kafka side: the brokers answer over mutual TLS, the topic exists, and a message part
//! fits the topic's `max.message.bytes`.

use super::*;

/// The most bytes a part of `max` bytes of JSON can take in its record batch: lz4's worst
/// case (`LZ4_COMPRESSBOUND`, lz4.h: n + n/255 + 16) plus [`RECORD_FRAMING`]. The topic's
/// `max.message.bytes` bounds the batch as sent, compressed.
pub(super) fn wire_bound(max: usize) -> u64 {
    let n = u64::try_from(max).unwrap_or(u64::MAX);
    n.saturating_add(n / 255)
        .saturating_add(16)
        .saturating_add(RECORD_FRAMING)
}

/// What a part's record batch carries beside its compressed payload: the batch and record
/// headers, the key, the CloudEvents headers (a few hundred bytes) and lz4's frame and block
/// headers (a few per 64 KiB block).
pub(super) const RECORD_FRAMING: u64 = 4096;

/// The largest `--max-message-bytes` whose [`wire_bound`] fits `limit`.
pub(super) fn largest_fitting(limit: u64) -> u64 {
    limit.saturating_sub(16 + RECORD_FRAMING) * 255 / 256
}

/// The `kafka message size` line: a part of `--max-message-bytes` must fit the topic's
/// `max.message.bytes`, or the broker refuses the hour's publish.
pub(super) fn message_size(lines: &mut Lines, max: usize, limit: TopicLimit) {
    let check = "kafka message size";
    let bound = wire_bound(max);
    match limit {
        TopicLimit::Bytes(limit) if limit >= bound => lines.ok(
            check,
            format!(
                "the topic accepts batches of {limit} bytes (max.message.bytes); a part of \
                 --max-message-bytes {max} takes at most {bound}"
            ),
        ),
        TopicLimit::Bytes(limit) => lines.fail(
            check,
            format!(
                "the topic accepts batches of {limit} bytes (max.message.bytes), and a part of \
                 --max-message-bytes {max} may take {bound} (compressed, with its headers): \
                 lower --max-message-bytes to {} or raise the topic's max.message.bytes",
                largest_fitting(limit)
            ),
            exit::OUTPUT,
        ),
        TopicLimit::NotReported => lines.warn(
            check,
            format!(
                "the brokers do not report the topic's max.message.bytes (Kafka's default is \
                 1048588 bytes); a part of --max-message-bytes {max} takes at most {bound}, \
                 and the first publish proves it fits"
            ),
        ),
        TopicLimit::Unreadable(why) => lines.warn(
            check,
            format!(
                "could not read the topic's max.message.bytes ({why}; DescribeConfigs needs \
                 the DescribeConfigs ACL on the topic); a part of --max-message-bytes {max} \
                 takes at most {bound}, and the first publish proves it fits"
            ),
        ),
    }
}
