//! The flags' values parsed and validated one by one: times, durations, headers, URLs, label
//! names; each refusal names the flag, the value and what to give instead.

use super::*;

/// `--max-scrape-gap`: at least a minute (a shorter one would refuse ordinary missed
/// scrapes) and under an hour (a longer hole leaves no sample to bridge from in some hour).
pub(crate) fn max_scrape_gap(raw: &str) -> Result<Duration> {
    let d = parse_duration("--max-scrape-gap", raw)?;
    if !(Duration::from_secs(60)..Duration::from_secs(3600)).contains(&d) {
        return Err(invalid(
            "--max-scrape-gap",
            raw,
            "give a duration from 1m to 59m, e.g. 15m",
        ));
    }
    Ok(d)
}

/// `--max-source-silence`: at least the waiting alert's 3 hours, so that a stopped source pages
/// as such only after lag would have; at most the 6 hours the newest samples are looked for,
/// beyond which a source's newest sample is not seen at all.
pub(crate) fn max_source_silence(raw: &str) -> Result<Duration> {
    let d = parse_duration("--max-source-silence", raw)?;
    if !(Duration::from_secs(3 * 3600)..=Duration::from_secs(6 * 3600)).contains(&d) {
        return Err(invalid(
            "--max-source-silence",
            raw,
            "give a duration from 3h to 6h, e.g. 4h",
        ));
    }
    Ok(d)
}

/// `--reference-namespace`: comma-separated Kubernetes namespace names (RFC 1123 labels),
/// joined into the alternation the queries match (`kube-system|openshift-monitoring`); checked
/// names need no escaping there.
pub(crate) fn reference_namespace(raw: &str) -> Result<String> {
    let label = regex::Regex::new("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
        .map_err(|e| ConfigError::Usage(e.to_string()))?;
    let names: Vec<&str> = raw.split(',').map(str::trim).collect();
    if names.iter().any(|n| !label.is_match(n)) {
        return Err(invalid(
            "--reference-namespace",
            raw,
            "give namespace names (lower-case letters, digits and '-', at most 63), separated \
             by commas, e.g. kube-system,openshift-monitoring",
        ));
    }
    Ok(names.join("|"))
}

pub(crate) fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parse an RFC 3339 time given to `flag`.
pub fn parse_time(flag: &'static str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            invalid(
                flag,
                value,
                format!("{e}; use RFC 3339, for example 2026-11-22T10:00:00Z"),
            )
        })
}

pub fn parse_duration(flag: &'static str, value: &str) -> Result<Duration> {
    let v = value.trim();
    // humantime panics (overflow in Duration::new) on numbers near u64::MAX; found by the
    // cli_values fuzz target. No duration we take needs more than 10 digits or 64 characters.
    if v.len() > 64 || v.split(|c: char| !c.is_ascii_digit()).any(|n| n.len() > 10) {
        return Err(invalid(
            flag,
            &v.chars().take(40).collect::<String>(),
            "too long or too large; use for example 30s, 10m or 1h",
        ));
    }
    humantime::parse_duration(v)
        .map_err(|e| invalid(flag, value, format!("{e}; use for example 30s, 10m or 1h")))
}

pub fn parse_tiers(values: &[String]) -> Result<BTreeMap<String, Tier>> {
    let mut map = BTreeMap::new();
    for raw in values.iter().filter(|v| !v.trim().is_empty()) {
        let (class, tier) = raw.split_once('=').ok_or_else(|| {
            invalid(
                "--storage-tier",
                raw,
                "expected CLASS=TIER, for example gold=premium",
            )
        })?;
        let tier: Tier = tier.parse().map_err(|()| {
            invalid(
                "--storage-tier",
                raw,
                "unknown tier; use standard, basic or premium",
            )
        })?;
        let class = class.trim();
        if class.is_empty() {
            return Err(invalid(
                "--storage-tier",
                raw,
                "the StorageClass name is empty",
            ));
        }
        if let Some(previous) = map.insert(class.to_string(), tier)
            && previous != tier
        {
            return Err(invalid(
                "--storage-tier",
                raw,
                format!("StorageClass {class} is mapped twice, to different tiers"),
            ));
        }
    }
    Ok(map)
}

/// `--prometheus-header NAME=VALUE` items. A value is usually a credential (`Authorization=Bearer
/// …`), so no error prints one: not the value, and not an item without `=`, which may be the
/// part of a value after a comma (the list is comma-separated).
pub(crate) fn parse_headers(values: &[String]) -> Result<Vec<(String, String)>> {
    check_headers("--prometheus-header", values)
}

/// `--prometheus-header-file NAME=PATH` items: each header's value read from a file (a
/// mounted Secret), its one trailing line end dropped, then checked as `--prometheus-header`
/// values are. Errors name the header and the file, never the value.
pub(crate) fn parse_header_files(values: &[String]) -> Result<Vec<(String, String)>> {
    let flag = "--prometheus-header-file";
    let mut items = Vec::new();
    for raw in values.iter().filter(|v| !v.trim().is_empty()) {
        let (name, path) = raw.split_once('=').ok_or_else(|| {
            invalid(
                flag,
                raw,
                "expected NAME=PATH, for example X-Scope-OrgID=/var/run/secrets/tenant/org-id",
            )
        })?;
        let text = std::fs::read_to_string(path.trim()).map_err(|e| {
            invalid(
                flag,
                &format!("{}=<value of {}>", name.trim(), path.trim()),
                format!(
                    "cannot read the file: {e}; mount the Secret that holds the header's value                      there"
                ),
            )
        })?;
        let value = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        items.push(format!("{}={value}", name.trim()));
    }
    check_headers(flag, &items)
}

/// Header items `NAME=VALUE` of `flag`, checked (module documentation of [`parse_headers`]).
pub(crate) fn check_headers(
    flag: &'static str,
    values: &[String],
) -> Result<Vec<(String, String)>> {
    values
        .iter()
        .filter(|v| !v.trim().is_empty())
        .enumerate()
        .map(|(i, raw)| {
            let (name, value) = raw.split_once('=').ok_or_else(|| {
                invalid(
                    flag,
                    &format!("item {} (not shown, in case it is part of a secret)", i + 1),
                    "expected NAME=VALUE, for example X-Scope-OrgID=tenant-a; PROMETHEUS_HEADERS \
                     separates headers with commas, so a value cannot contain one",
                )
            })?;
            let name = name.trim();
            let shown = |name: &str| format!("{name}=<hidden>");
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                invalid(
                    flag,
                    &format!("item {} (not shown, in case it is a secret)", i + 1),
                    "not a valid header name: expected NAME=VALUE",
                )
            })?;
            if value.chars().any(char::is_control) {
                return Err(invalid(
                    flag,
                    &shown(name),
                    "the value holds a control character (a CR or LF, often the line end of a \
                     file read with $(cat …)); remove it",
                ));
            }
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| invalid(flag, &shown(name), "not a valid header value"))?;
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// `--cluster-label`: a Prometheus label name.
pub(crate) fn cluster_label(raw: &str) -> Result<String> {
    let name = raw.trim();
    let ok = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
    if name.is_empty() || !ok || name.starts_with("__") {
        return Err(invalid(
            "--cluster-label",
            raw,
            "must be a label name (letters, digits and '_', not starting with a digit or \
             '__'), e.g. cluster",
        ));
    }
    Ok(name.to_string())
}

/// An http(s) URL given to `flag`, its credentials hidden in errors, which show `example`.
pub(crate) fn parse_http_url(flag: &'static str, raw: &str, example: &str) -> Result<reqwest::Url> {
    // A URL may carry a password (Basic authentication): errors never print it.
    let url = reqwest::Url::parse(raw).map_err(|e| {
        invalid(
            flag,
            &hide_userinfo(raw),
            format!("{e}; use for example {example}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            flag,
            &crate::prometheus::redacted(&url),
            "the scheme must be http or https",
        ));
    }
    Ok(url)
}

/// An unparsable URL for an error message: whatever stands between `://` and the last `@`
/// before the path may be credentials, and is hidden.
pub(crate) fn hide_userinfo(raw: &str) -> String {
    // A query string may carry a token: never shown in an unparsed URL.
    let raw = match raw.split_once('?') {
        Some((before, _)) => format!("{before}?***"),
        None => raw.to_string(),
    };
    let raw = raw.as_str();
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => raw.to_string(),
    }
}
