//! CloudEvents attributes on every record: the Kafka protocol binding of CloudEvents 1.0 in
//! binary content mode, where the record's value is the event's data (our MCMP message,
//! unchanged) and each attribute is a header `ce_<name>` (CloudEvents "Kafka Protocol Binding",
//! section 3.2; `datacontenttype` is the `content-type` header, which every record carries).
//!
//! Why: consumers that speak CloudEvents (OpenMeter, event routers) read our records without
//! code of their own, and our `message_id` already has CloudEvents' duplicate semantics: the
//! pair of `source` and `id` is unique per distinct event and the same on a re-send, so the
//! billing side and a CloudEvents consumer drop the same copies. The attributes are a function of cluster, hour and
//! part only, like the id, so a re-publish writes them identically.

use crate::window::{HourWindow, rfc3339};

/// The CloudEvents version of the attributes.
pub const SPECVERSION: &str = "1.0";

/// The event type: one hour (or one part of it) of MCMP consumption, version 1 of its shape.
/// A change of the message's shape is a new type (`…v2`), not a change of this one.
pub const TYPE: &str = "io.consumption-metrics.mcmp.consumption.hour.v1";

/// The schema of the data, versioned: the `$id` of `schema/mcmp-message.schema.json` (a unit
/// test holds them equal).
pub const DATASCHEMA: &str =
    "https://github.com/consumption-metrics/consumption-metrics/schema/v1/mcmp-message.schema.json";

/// The header that carries `datacontenttype` in binary mode.
pub const CONTENT_TYPE: &str = "application/json";

/// The event source: the job of one cluster. With the id, unique per distinct event.
pub fn source(cluster: &str) -> String {
    format!("/consumption-metrics/{cluster}")
}

/// The `ce_` headers of one record, in the order written: `key` is the record key
/// (`<cluster>/<hour>`), which is also the event's subject.
pub fn headers(
    cluster: &str,
    window: &HourWindow,
    key: &str,
    message_id: &str,
) -> [(&'static str, String); 7] {
    [
        ("ce_specversion", SPECVERSION.to_string()),
        ("ce_id", message_id.to_string()),
        ("ce_source", source(cluster)),
        ("ce_type", TYPE.to_string()),
        ("ce_time", rfc3339(window.start())),
        ("ce_subject", key.to_string()),
        ("ce_dataschema", DATASCHEMA.to_string()),
    ]
}

/// Check a record's `ce_` headers against what this job writes for it; `names` are the
/// record's header names and `value` reads one. Records without any `ce_` header pass (written
/// before the attributes existed, or with `--kafka-cloudevents false`); records with some must
/// carry every one, exactly, and no other `ce_` header. `Err` says which differs.
pub fn check<'a>(
    names: impl Iterator<Item = &'a str>,
    value: impl Fn(&str) -> Option<&'a str>,
    cluster: &str,
    window: &HourWindow,
    key: &str,
    message_id: &str,
) -> Result<(), String> {
    let expected = headers(cluster, window, key, message_id);
    let mut any = false;
    for name in names.filter(|n| n.starts_with("ce_")) {
        any = true;
        if !expected.iter().any(|(k, _)| *k == name) {
            return Err(format!(
                "header {name:?} is not a CloudEvents attribute we write"
            ));
        }
    }
    if !any {
        return Ok(());
    }
    for (name, want) in &expected {
        match value(name) {
            Some(got) if got == want => {}
            Some(got) => {
                return Err(format!(
                    "CloudEvents header {name} is {got:?}, not {want:?}"
                ));
            }
            None => return Err(format!("CloudEvents header {name} is missing")),
        }
    }
    match value("content-type") {
        Some(CONTENT_TYPE) => Ok(()),
        other => Err(format!(
            "header content-type is {other:?}, not {CONTENT_TYPE:?} (the event's datacontenttype)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour() -> HourWindow {
        HourWindow::starting_at("2026-11-01T02:00:00Z".parse().unwrap(), "t").unwrap()
    }

    /// The data schema named in every record is the schema file's own id.
    #[test]
    fn the_dataschema_is_the_schema_files_id() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schema/mcmp-message.schema.json")).unwrap();
        assert_eq!(schema["$id"], DATASCHEMA);
    }

    #[test]
    fn attributes_are_a_function_of_cluster_hour_and_part() {
        let h = headers("prod-01", &hour(), "prod-01/2026-11-01T02:00:00Z", "id-1");
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("ce_source"), Some("/consumption-metrics/prod-01"));
        assert_eq!(get("ce_time"), Some("2026-11-01T02:00:00Z"));
        assert_eq!(get("ce_subject"), Some("prod-01/2026-11-01T02:00:00Z"));
        assert_eq!(get("ce_id"), Some("id-1"));
        assert_eq!(
            h,
            headers("prod-01", &hour(), "prod-01/2026-11-01T02:00:00Z", "id-1")
        );
    }

    #[test]
    fn records_are_checked_only_when_they_carry_attributes() {
        let key = "c/2026-11-01T02:00:00Z";
        let mut record: Vec<(String, String)> = headers("c", &hour(), key, "id")
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        record.push(("content-type".into(), CONTENT_TYPE.into()));
        let run = |r: &[(String, String)]| {
            check(
                r.iter().map(|(k, _)| k.as_str()),
                |n| r.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()),
                "c",
                &hour(),
                key,
                "id",
            )
        };
        assert_eq!(run(&record), Ok(()));
        assert_eq!(run(&[]), Ok(()));
        let mut wrong = record.clone();
        wrong[4].1 = "2026-11-01T03:00:00Z".into();
        assert!(run(&wrong).unwrap_err().contains("ce_time"));
        let mut partial = record.clone();
        partial.remove(2);
        assert!(run(&partial).unwrap_err().contains("ce_source is missing"));
        let mut extra = record;
        extra.push(("ce_partitionkey".into(), "x".into()));
        assert!(run(&extra).unwrap_err().contains("ce_partitionkey"));
    }
}
