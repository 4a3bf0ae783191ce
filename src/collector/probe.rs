//! Whether the engine's range windows are closed (Prometheus 2) or left-open (Prometheus 3,
//! VictoriaMetrics): every query is written for one, and the wrong one bills a sample twice or
//! never at an hour's edge ([`queries::probe`]).

use super::error::{CollectError, Result};
use crate::prometheus::{Prometheus, RangeQuery};
use crate::queries::{self, Windows};

/// Ask the engine with one query evaluated at `at`, which must be hour-aligned.
pub async fn probe_windows(
    prometheus: &Prometheus,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Windows> {
    let series = prometheus
        .query_range(&RangeQuery::at("window probe", queries::probe(), at))
        .await?;
    let points: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .collect();
    match points.as_slice() {
        [p] => queries::windows_from_probe(*p).ok_or(CollectError::Probe {
            answer: format!("{p}"),
        }),
        other => Err(CollectError::Probe {
            answer: format!("{other:?}"),
        }),
    }
}
