//! The checkpoint: read, and its write permission proven without writing.

use super::*;

/// The checkpoint's value (the hour after it), and its line: readable and writable, proven
/// without writing ([`Checkpoint::verify_writable`]: a missing ConfigMap is not created, which
/// would turn a lost checkpoint into a first run).
pub(super) async fn read_checkpoint(
    config: &Config,
    store: crate::checkpoint::Result<Checkpoint>,
) -> (Option<HourWindow>, Line) {
    let line = |verdict, detail: String| Line {
        check: "checkpoint".into(),
        verdict,
        detail,
        class: if verdict == Verdict::Fail {
            exit::CHECKPOINT
        } else {
            exit::OK
        },
    };
    let mut store = match store {
        Ok(s) => s,
        Err(e) => return (None, line(Verdict::Fail, e.to_string())),
    };
    let value = match store.load(config.now).await {
        Ok(v) => v,
        Err(e) => return (None, line(Verdict::Fail, e.to_string())),
    };
    let checked = match (store.verify_writable().await, value) {
        (Ok(()), Some(h)) => line(
            Verdict::Ok,
            format!(
                "{}: next hour {}, writable (proven without writing)",
                store.describe(),
                rfc3339(h.start())
            ),
        ),
        // Not an error (a new installation has no value), but the one case where a lost
        // checkpoint would skip hours: say how to tell and what to do.
        (Ok(()), None) => line(
            Verdict::Warn,
            format!(
                "{}: no value yet, writable (proven without writing; check created nothing). A \
                 run takes this for a first run and bills from the newest settled hour only. If \
                 the checkpoint was deleted, restore the last lastPublishedTime from the logs \
                 first (docs/operating.md, Runbook)",
                store.describe()
            ),
        ),
        (Err(e), _) => line(Verdict::Fail, e.to_string()),
    };
    (value, checked)
}
