//! The data's own labels, checked once per span before anything is billed: one cluster in the
//! store (or in the scope), and kube-state-metrics and cAdvisor scraped with `honor_labels`
//! ([`crate::queries::data_labels`]). Both would otherwise bill wrong with every query succeeding: a
//! shared store adds clusters up, and `exported_namespace` bills the cluster to the exporter's
//! namespace.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{CollectError, Result};
use crate::prometheus::Series;
use crate::window::HourWindow;

/// Refuse the span when its [`crate::queries::data_labels`] answer shows several clusters in an hour
/// or series scraped without `honor_labels`. `scoped`: whether `--prometheus-selector` is set
/// (the message then says that it does not isolate one cluster).
pub(super) fn check(
    answer: &[Series],
    span: &[HourWindow],
    cluster_label: &str,
    scoped: bool,
) -> Result<()> {
    let hour_of = |t: i64| {
        span.iter()
            .find(|w| w.end().timestamp() == t)
            .map(|w| w.to_string())
            .unwrap_or_else(|| t.to_string())
    };
    let mut clusters: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for s in answer {
        match s.labels.get("check").map(String::as_str) {
            Some("clusters") => {
                let value = s.labels.get(cluster_label).cloned().unwrap_or_default();
                for (t, _) in &s.points {
                    clusters.entry(*t).or_default().insert(value.clone());
                }
            }
            Some("unlabelled_sidecars") => {
                if let Some((t, n)) = s.points.iter().find(|(_, n)| *n > 0.0) {
                    return Err(CollectError::SidecarsUnlabelled {
                        hour: hour_of(*t),
                        containers: *n,
                    });
                }
            }
            Some(label @ ("exported_namespace" | "exported_pod")) => {
                if let Some((t, n)) = s.points.iter().find(|(_, n)| *n > 0.0) {
                    return Err(CollectError::ExportedLabels {
                        hour: hour_of(*t),
                        label: label.to_string(),
                        series: *n,
                    });
                }
            }
            // Not this query's series: the other queries' own checks judge such an answer.
            _ => {}
        }
    }
    if let Some((t, values)) = clusters.iter().find(|(_, v)| v.len() > 1) {
        let shown: Vec<String> = values
            .iter()
            .map(|v| {
                if v.is_empty() {
                    "series without it".to_string()
                } else {
                    format!("{v:?}")
                }
            })
            .collect();
        return Err(CollectError::MixedClusters {
            hour: hour_of(*t),
            label: cluster_label.to_string(),
            count: values.len(),
            values: shown.join(", "),
            first: values
                .iter()
                .find(|v| !v.is_empty())
                .cloned()
                .unwrap_or_default(),
            scoped: if scoped {
                ", even within --prometheus-selector"
            } else {
                ""
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: i64 = 1_793_494_800;

    fn span() -> Vec<HourWindow> {
        let t: chrono::DateTime<chrono::Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        vec![HourWindow::starting_at(t, "t").unwrap()]
    }

    fn series(labels: &[(&str, &str)], v: f64) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: vec![(END, v)],
        }
    }

    #[test]
    fn one_cluster_and_honored_labels_pass() {
        for answer in [
            vec![series(&[("check", "clusters")], 1.0)],
            vec![series(&[("check", "clusters"), ("cluster", "east")], 1.0)],
            vec![],
        ] {
            check(&answer, &span(), "cluster", false).unwrap();
        }
    }

    #[test]
    fn several_clusters_are_refused_with_the_selector_to_set() {
        let e = check(
            &[
                series(&[("check", "clusters"), ("cluster", "west")], 1.0),
                series(&[("check", "clusters"), ("cluster", "east")], 1.0),
            ],
            &span(),
            "cluster",
            false,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(r#"2 clusters (label cluster: "east", "west")"#),
            "{text}"
        );
        assert!(
            text.contains(r#"--prometheus-selector 'cluster="east"'"#),
            "{text}"
        );
        // Series with and without the label are two sources too.
        let e = check(
            &[
                series(&[("check", "clusters")], 1.0),
                series(&[("check", "clusters"), ("region", "x")], 1.0),
                series(&[("check", "clusters"), ("cluster", "east")], 1.0),
            ],
            &span(),
            "cluster",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("series without it") && e.contains("even within"),
            "{e}"
        );
    }

    #[test]
    fn exported_labels_are_refused_with_the_fix() {
        let e = check(
            &[series(&[("check", "exported_namespace")], 42.0)],
            &span(),
            "cluster",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "42 kube-state-metrics or cAdvisor series carry the label exported_namespace"
            ) && e.contains("honorLabels: true"),
            "{e}"
        );
        let ok = check(
            &[series(&[("check", "exported_pod")], 0.0)],
            &span(),
            "cluster",
            false,
        );
        assert!(ok.is_ok());
    }
}
