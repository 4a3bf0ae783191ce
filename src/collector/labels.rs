//! The data's own labels, checked once per span before anything is billed: one cluster in the
//! store (or in the scope), and kube-state-metrics and cAdvisor scraped with `honor_labels`
//! ([`crate::queries::data_labels`]). Both would otherwise bill wrong with every query succeeding: a
//! shared store adds clusters up, and `exported_namespace` bills the cluster to the exporter's
//! namespace.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{CollectError, Result};
use super::validate::hour_of;
use crate::prometheus::Series;
use crate::window::HourWindow;

/// Refuse the span when its [`crate::queries::data_labels`] answer shows series scraped
/// without `honor_labels`, or native sidecars that kube-state-metrics does not label.
pub(super) fn check(answer: &[Series], span: &[HourWindow]) -> Result<()> {
    for s in answer {
        match s.labels.get("check").map(String::as_str) {
            Some("unlabelled_sidecars") => {
                if let Some((t, n)) = s.points.iter().find(|(_, n)| *n > 0.0) {
                    return Err(CollectError::SidecarsUnlabelled {
                        hour: hour_of(span, *t),
                        containers: *n,
                    });
                }
            }
            Some(label @ ("exported_namespace" | "exported_pod")) => {
                if let Some((t, _)) = s.points.iter().find(|(_, n)| *n > 0.0) {
                    // Every job's series carrying the label at that time (one answer series
                    // per job), named in the refusal.
                    let at = |x: &Series| x.points.iter().find(|(u, _)| u == t).map(|(_, n)| *n);
                    let jobs: Vec<(String, f64)> = answer
                        .iter()
                        .filter(|x| x.labels.get("check").is_some_and(|c| c == label))
                        .filter_map(|x| {
                            let job = x.labels.get("job").cloned().unwrap_or_default();
                            at(x).filter(|n| *n > 0.0).map(|n| (job, n))
                        })
                        .collect();
                    return Err(CollectError::ExportedLabels {
                        hour: hour_of(span, *t),
                        label: label.to_string(),
                        series: jobs.iter().map(|(_, n)| n).sum(),
                        jobs: jobs
                            .iter()
                            .map(|(job, n)| format!("{job:?} ({n})"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
            Some(kind @ ("negative_requests" | "nan_requests")) => {
                if let Some((t, n)) = s.points.iter().find(|(_, n)| *n > 0.0) {
                    return Err(CollectError::ImpossibleRequests {
                        hour: hour_of(span, *t),
                        series: *n,
                        what: if kind == "negative_requests" {
                            "a negative value"
                        } else {
                            "NaN"
                        },
                    });
                }
            }
            Some("odd_restart_policy") => {
                let policy = s.labels.get("restart_policy").map_or("", String::as_str);
                if let Some((t, n)) = s.points.iter().find(|(_, n)| *n > 0.0) {
                    tracing::warn!(
                        hour = %hour_of(span, *t),
                        restart_policy = ?policy,
                        init_containers = n,
                        "init containers carry a restart_policy Kubernetes does not accept \
                         (only Always makes a native sidecar): they are billed as ordinary init \
                         containers; check what writes kube_pod_init_container_info"
                    );
                }
            }
            // Not this query's series: the other queries' own checks judge such an answer.
            _ => {}
        }
    }
    Ok(())
}

/// Per hour of `span`, the values of `cluster_label` on the series of a
/// [`crate::queries::namespace_samples`] answer with samples in it (`""`: series without the
/// label). Its series are the namespaces' phase series, every label kept, over the whole hour.
pub(super) fn clusters_by_hour(
    answer: &[Series],
    span: &[HourWindow],
    cluster_label: &str,
) -> BTreeMap<i64, BTreeSet<String>> {
    let ends: BTreeSet<i64> = span.iter().map(|w| w.end().timestamp()).collect();
    let mut clusters: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for s in answer {
        let value = s
            .labels
            .get(cluster_label)
            .map(String::as_str)
            .unwrap_or("");
        for (t, n) in &s.points {
            if *n > 0.0 && ends.contains(t) {
                let seen = clusters.entry(*t).or_default();
                if !seen.contains(value) {
                    seen.insert(value.to_string());
                }
            }
        }
    }
    clusters
}

/// Refuse the span when a [`crate::queries::namespace_samples`] answer shows more than one
/// cluster in an hour ([`clusters_by_hour`]). `scoped`: whether `--prometheus-selector` is set
/// (the message then says that it does not isolate one cluster).
///
/// Clusters are judged by `cluster_label` and, when that is another label, by `cluster` too:
/// the label central stores (Thanos, Mimir, VictoriaMetrics' external labels) most often tell
/// clusters apart by. A `--cluster-label` that the series do not carry (a typo, or the label
/// of another store) would otherwise see one cluster where `cluster` shows two, and bill them
/// as one.
pub(super) fn one_cluster(
    answer: &[Series],
    span: &[HourWindow],
    cluster_label: &str,
    scoped: bool,
) -> Result<()> {
    for label in judged_labels(cluster_label) {
        let clusters = clusters_by_hour(answer, span, label);
        judge_clusters(&clusters, span, label, scoped)?;
    }
    Ok(())
}

/// The label that tells clusters apart by default.
pub(super) const DEFAULT_CLUSTER_LABEL: &str = "cluster";

/// The labels [`one_cluster`] judges clusters by: the configured one, and the default.
pub(super) fn judged_labels(cluster_label: &str) -> Vec<&str> {
    if cluster_label == DEFAULT_CLUSTER_LABEL {
        vec![cluster_label]
    } else {
        vec![cluster_label, DEFAULT_CLUSTER_LABEL]
    }
}

/// [`one_cluster`] of clusters already read with [`clusters_by_hour`].
pub(super) fn judge_clusters(
    clusters: &BTreeMap<i64, BTreeSet<String>>,
    span: &[HourWindow],
    cluster_label: &str,
    scoped: bool,
) -> Result<()> {
    let Some((t, values)) = clusters.iter().find(|(_, v)| v.len() > 1) else {
        return Ok(());
    };
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
    Err(CollectError::MixedClusters {
        hour: hour_of(span, *t),
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--cluster-label region` on a store whose clusters are told apart by `cluster`: the
    /// clusters are still seen, and refused, not merged.
    #[test]
    fn a_cluster_label_the_series_lack_does_not_hide_two_clusters() {
        let answer = vec![
            series(&[("namespace", "a"), ("cluster", "east")], 120.0),
            series(&[("namespace", "a"), ("cluster", "west")], 120.0),
        ];
        let e = one_cluster(&answer, &span(), "region", false).unwrap_err();
        assert!(
            matches!(&e, CollectError::MixedClusters { label, .. } if label == "cluster"),
            "{e}"
        );
        let one = vec![series(&[("namespace", "a"), ("cluster", "east")], 120.0)];
        one_cluster(&one, &span(), "region", false).unwrap();
    }

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

    /// A namespaces answer's series: a phase series' sample count in the hour ending at `END`.
    fn phase(labels: &[(&str, &str)], v: f64) -> Series {
        let mut all = vec![("namespace", "team-a"), ("phase", "Active")];
        all.extend_from_slice(labels);
        series(&all, v)
    }

    #[test]
    fn one_cluster_and_honored_labels_pass() {
        for answer in [
            vec![phase(&[], 30.0), phase(&[("instance", "ksm-2")], 30.0)],
            vec![phase(&[("cluster", "east")], 30.0)],
            // A cluster with no sample in the hour is not in it.
            vec![
                phase(&[("cluster", "east")], 30.0),
                phase(&[("cluster", "west")], 0.0),
            ],
            vec![],
        ] {
            one_cluster(&answer, &span(), "cluster", false).unwrap();
        }
        check(&[series(&[("check", "exported_pod")], 0.0)], &span()).unwrap();
    }

    #[test]
    fn several_clusters_are_refused_with_the_selector_to_set() {
        let e = one_cluster(
            &[
                phase(&[("cluster", "west")], 3.0),
                phase(&[("cluster", "east")], 30.0),
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
        let e = one_cluster(
            &[
                phase(&[], 30.0),
                phase(&[("region", "x")], 30.0),
                phase(&[("cluster", "east")], 30.0),
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
        // Only the span's hours are judged: the context hours before it are not billed.
        let before = Series {
            points: vec![(END - 3600, 30.0)],
            ..phase(&[("cluster", "west")], 0.0)
        };
        one_cluster(
            &[before, phase(&[("cluster", "east")], 30.0)],
            &span(),
            "cluster",
            false,
        )
        .unwrap();
    }

    #[test]
    fn exported_labels_are_refused_with_the_fix() {
        let e = check(&[series(&[("check", "exported_namespace")], 42.0)], &span())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "42 kube-state-metrics or cAdvisor series carry the label exported_namespace"
            ) && e.contains("honorLabels: true"),
            "{e}"
        );
        let ok = check(&[series(&[("check", "exported_pod")], 0.0)], &span());
        assert!(ok.is_ok());
    }
}
