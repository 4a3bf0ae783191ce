//! What the HTTP transport needs beyond reqwest: redirects kept to the origin, secrets kept
//! out of every error, and the server's `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest `Retry-After` a run waits for; beyond it the run stops and the next scheduled
/// run retries (an hourly job must not sleep through its own successor).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110).
pub(super) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.to_utc();
    Some((at - now).to_std().unwrap_or_default())
}

/// `url` for logs and errors: a password in it (sent as Basic authentication) is replaced by
/// `***`.
pub fn redacted(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    // A query string may carry a token (`?access_token=…`): its names are kept, values hidden.
    if shown.query().is_some() {
        let names: Vec<String> = shown.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let mut pairs = shown.query_pairs_mut();
        pairs.clear();
        for name in &names {
            pairs.append_pair(name, "***");
        }
    }
    shown.to_string()
}

/// Whether `to` has the scheme, host and port of `from`: the only redirects followed.
pub(super) fn same_origin(from: &reqwest::Url, to: &reqwest::Url) -> bool {
    from.scheme() == to.scheme()
        && from.host_str() == to.host_str()
        && from.port_or_known_default() == to.port_or_known_default()
}

/// The marker of a refused redirect in reqwest's error chain.
#[derive(Debug)]
pub(super) struct CrossOrigin(pub(super) String);

impl std::fmt::Display for CrossOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CrossOrigin {}

/// The refused redirect's target, if `e` is one.
pub(super) fn find_cross_origin(e: &reqwest::Error) -> Option<String> {
    if !e.is_redirect() {
        return None;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<CrossOrigin>() {
            return Some(c.0.clone());
        }
        source = s.source();
    }
    Some("(unknown)".into())
}

/// `text` with every secret we sent replaced by `<redacted>`: an error page that echoes the
/// request must not carry the token or password into the log.
pub(super) fn scrub(mut text: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret.as_str(), "<redacted>");
    }
    text
}

/// An error and its sources on one line: reqwest hides the useful part ("Connection refused")
/// in the source chain.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
