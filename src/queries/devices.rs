//! dcgm-exporter's device series as the devices source reads them ([`crate::gpu::dcgm`]): raw,
//! by part or by UUID, and summarised per series with its targets' scrapes (why:
//! [`crate::collector`]'s `devices`).

use super::Windows;
use crate::gpu::dcgm::{self, METRIC};

/// The raw samples of every device's series in `[T - len, T)`, `T` the evaluation time.
pub fn samples(w: Windows, len_ms: u128) -> String {
    format!("{METRIC}{}", w.select(len_ms, 0))
}

/// [`samples`] of one part of the devices ([`parts`]).
pub fn samples_of(w: Windows, len_ms: u128, part: &str) -> String {
    if part.is_empty() {
        return samples(w, len_ms);
    }
    format!("{METRIC}{{{part}}}{}", w.select(len_ms, 0))
}

/// Per device series of one part ([`parts`]), its samples in the read `[E - len, E)` (the hour
/// and `--max-scrape-gap` on either side): one pass over the samples a raw read would return,
/// answered with a number per series. A series with a sample at every scrape its target was
/// attempted in the read, of a target scraped on both sides of the hour, is steady: the same
/// pod (or nobody) held its device all hour, and each sample's time reaches its neighbours, so
/// the collector bills it without its samples. Series that differ only in labels [`dcgm::read`] does
/// not read (a pod's containers) are one (`max by`). One window, not the hour and each side
/// apart: a store spends as much on finding a series' chunks as on reading an hour of them.
pub fn summary(w: Windows, part: &str, len_ms: u128) -> String {
    let selector = if part.is_empty() {
        METRIC.to_string()
    } else {
        format!("{METRIC}{{{part}}}")
    };
    format!(
        "max by ({}) (count_over_time({selector}{}))",
        dcgm::READ_LABELS,
        w.select(len_ms, 0)
    )
}

/// Per dcgm-exporter target (`matchers`: its provenance), with its `namespace` and `pod`: the
/// scrapes Prometheus attempted in the whole read of `len_ms` before the evaluation time
/// (`window="attempts"`: the samples a device held all the read has, failed scrapes included),
/// in the `pad_ms` before the hour (`"before"`) and in the `pad_ms` after it (`"after"`). `up`
/// is one series per target: these rows are cheap beside the devices'.
pub fn target_summary(w: Windows, matchers: &str, pad_ms: u128, len_ms: u128) -> String {
    let window = |name: &str, len: u128, offset: u128| {
        format!(
            "label_replace(count_over_time(up{{{matchers}}}{}), \"window\", \"{name}\", \"\", \"\")",
            w.select(len, offset)
        )
    };
    [
        window("attempts", len_ms, 0),
        window("before", pad_ms, len_ms - pad_ms),
        window("after", pad_ms, 0),
    ]
    .join("\nor\n")
}

/// The newest answered scrape of dcgm-exporter's targets in the `len_ms` before the evaluation
/// time, Unix seconds: how far the store holds the devices (Prometheus stamps a scrape's `up`
/// and its samples alike). Steps of 4 minutes, under the default 5-minute lookback, see every
/// sample.
pub fn newest_scrape(matchers: &str, len_ms: u128) -> String {
    format!(
        "max(max_over_time((timestamp(up{{{matchers}}}) and up{{{matchers}}} == 1)[{len_ms}ms:4m]))"
    )
}

/// The raw samples of the devices `uuids` (plain UUIDs: letters, digits and dashes) in
/// `[T - len, T)`.
pub fn samples_of_devices(w: Windows, len_ms: u128, uuids: &[&str]) -> String {
    format!(
        "{METRIC}{{UUID=~\"{}\"}}{}",
        uuids.join("|"),
        w.select(len_ms, 0)
    )
}

/// Whether `uuid` can go in [`samples_of_devices`]' alternation as it is.
pub fn plain_uuid(uuid: &str) -> bool {
    !uuid.is_empty() && uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The most parts an hour's read is cut into.
pub const MAX_PARTS: usize = 16;

/// The label matchers of `n` parts of the devices (`n` a power of two up to [`MAX_PARTS`]),
/// by the last character of each series' `UUID`: NVIDIA's UUIDs end in a random hexadecimal
/// digit, and every series of one device (its exporter replicas, the copies per pod, its MIG
/// instances, which carry the parent's UUID) lands in the same part, which [`dcgm::read`] and the
/// integration need. One more part holds every series whose `UUID` does not end so (none, a
/// lower-case `uuid` label, another vendor's scheme), so that no series is left out. One part
/// (`n` = 1) is the empty matcher: every series.
pub fn parts(n: usize) -> Vec<String> {
    if n <= 1 {
        return vec![String::new()];
    }
    let n = n.min(MAX_PARTS).next_power_of_two();
    let digits: Vec<char> = "0123456789abcdef".chars().collect();
    let per = digits.len() / n;
    let mut out: Vec<String> = digits
        .chunks(per)
        .map(|chunk| {
            let class: String = chunk
                .iter()
                .flat_map(|c| {
                    let upper = c.to_ascii_uppercase();
                    if upper == *c {
                        vec![*c]
                    } else {
                        vec![*c, upper]
                    }
                })
                .collect();
            format!("UUID=~\".*[{class}]\"")
        })
        .collect();
    out.push("UUID!~\".*[0-9a-fA-F]\"".to_string());
    out
}

/// How many parts an answer of about `bytes` bytes needs so that each part stays within
/// `budget` bytes ([`SAMPLE_BYTES`], [`SUMMARY_ROW_BYTES`]).
pub fn parts_for(bytes: f64, budget: usize) -> usize {
    let needed = (bytes.max(0.0) / budget.max(1) as f64).ceil() as usize;
    needed.clamp(1, MAX_PARTS).next_power_of_two()
}

/// What a raw answer spends on a sample (`[1793494807.123,"4096"],`); a series' labels, about
/// 700 bytes, are small beside its 360 samples of 1.5 hours at 15 s.
pub const SAMPLE_BYTES: f64 = 30.0;

/// What a [`summary`] spends on a row: the labels it keeps and one number (measured: 275 bytes
/// on the benchmark's fleet, dcgm-exporter 3.x labels).
pub const SUMMARY_ROW_BYTES: f64 = 300.0;

/// The raw samples of `up` of dcgm-exporter's targets (`matchers`: its provenance) in
/// `[T - len, T)`: Prometheus writes `up` 0 at every scrape of a target that fails (the
/// exporter crashed, its node NotReady) and nothing while the target is gone (its pod deleted,
/// its node removed), so a stretch without a device's samples is a hole of the exporter where
/// its target was down, and the device's end where the target was gone or up.
pub fn target_health(w: Windows, matchers: &str, len_ms: u128) -> String {
    format!("up{{{matchers}}}{}", w.select(len_ms, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts cover every last character once, upper and lower case, and the rest.
    #[test]
    fn parts_cover_every_series_once() {
        assert_eq!(parts(1), vec![String::new()]);
        let four = parts(4);
        assert_eq!(four.len(), 5);
        assert_eq!(four[0], r#"UUID=~".*[0123]""#);
        assert_eq!(four[3], r#"UUID=~".*[cCdDeEfF]""#);
        assert_eq!(four[4], r#"UUID!~".*[0-9a-fA-F]""#);
        assert_eq!(parts(64).len(), MAX_PARTS + 1);
        // 10,000 GPUs at 15 s: 1.5 hours of 3.6 million samples.
        let n = parts_for(10_000.0 * 360.0 * SAMPLE_BYTES, 16 << 20);
        assert_eq!(n, 8);
        assert_eq!(parts_for(0.0, 16 << 20), 1);
        assert_eq!(parts_for(f64::NAN, 16 << 20), 1);
        assert_eq!(parts_for(f64::INFINITY, 16 << 20), MAX_PARTS);
    }
}
