//! The store: it answers with the run's credentials and parameters, its windows, how far it
//! lags, the data's labels and clusters, and last the hour collected as a run collects it.

use super::*;

/// Every check of the store, in the order of the report; a lagging store is checked at the
/// newest hour it holds.
pub(super) async fn prometheus_checks(
    config: &Config,
    hour: &HourWindow,
    next: Option<HourWindow>,
    lines: &mut Lines,
) {
    let Some((prometheus, windows)) = connect(config, hour, lines).await else {
        return;
    };
    // A lagging store is checked at the newest hour it holds, as a run would wait for the
    // rest: one line says how far it lags, and no check fails for data not there yet.
    let lagging = store_lag(config, &prometheus, hour).await;
    let newest_held;
    let hour = match lagging {
        Some((newest, held)) => {
            let lag = (hour.end() - newest).to_std().unwrap_or_default();
            lines.warn(
                "store time",
                format!(
                    "the store lags: its newest kube-state-metrics sample is {}, {} before the \
                     end of {hour}; a run waits for that hour (exit 0 when scheduled, 7 for a \
                     dry-run or backfill) and bills it when the data is in. The checks below \
                     are of {held}, the newest hour it holds in full. If the lag persists past \
                     --max-source-silence, check the cluster's remote write and the store's \
                     ingestion (docs/operating.md, Runbook, ConsumptionMetricsHourWaitingForData)",
                    rfc3339(newest),
                    humantime::format_duration(Duration::from_secs(lag.as_secs())),
                ),
            );
            newest_held = held;
            &newest_held
        }
        None => hour,
    };
    metric_checks(config, &prometheus, windows, hour, lines).await;
    provenance_checks(config, &prometheus, windows, hour, lines).await;
    data_checks(config, &prometheus, windows, hour, lines).await;
    extended_resource_checks(config, &prometheus, windows, hour, lines).await;
    retention_check(config, &prometheus, windows, next, lines).await;
    hour_checks(config, &prometheus, windows, hour, lines).await;
}

/// When the store's newest sample of kube-state-metrics (the reference namespaces' phase, in
/// the six hours before `hour`'s end) lies more than a minute before `hour`'s end: that sample
/// and the newest hour the store holds in full. `None` when it holds `hour`, or nothing at
/// all in those hours (the checks then say what is missing).
pub(super) async fn store_lag(
    config: &Config,
    prometheus: &Prometheus,
    hour: &HourWindow,
) -> Option<(chrono::DateTime<chrono::Utc>, HourWindow)> {
    let q = format!(
        "max(timestamp(kube_namespace_status_phase{{namespace=~\"{}\", phase=\"Active\"}}))",
        config.collect.reference_namespace
    );
    let answer = prometheus
        .query_range(&RangeQuery {
            what: "the store's newest sample",
            expr: &q,
            start: hour.end() - chrono::TimeDelta::hours(6),
            end: hour.end(),
            step: Duration::from_secs(240),
        })
        .await
        .ok()?;
    let newest = answer
        .iter()
        .flat_map(|s| &s.points)
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !newest.is_finite() {
        return None;
    }
    let newest = chrono::DateTime::from_timestamp_millis((newest * 1000.0).round() as i64)?;
    if newest >= hour.end() - chrono::TimeDelta::minutes(1) {
        return None;
    }
    let held_end = floor_hour(newest + chrono::TimeDelta::minutes(1));
    let held = HourWindow::starting_at(held_end - chrono::TimeDelta::hours(1), "check").ok()?;
    Some((newest, held))
}

/// The `prometheus` and `windows` lines: the store answers the probe (a real query with every
/// parameter and header a run sends), and its windows are those configured. `None` when it
/// does not answer (the lines say so).
async fn connect(
    config: &Config,
    hour: &HourWindow,
    lines: &mut Lines,
) -> Option<(Prometheus, Windows)> {
    let prometheus = match Prometheus::new(&config.prometheus) {
        Ok(p) => p,
        Err(e) => {
            lines.fail("prometheus", e.to_string(), exit::COLLECT);
            return None;
        }
    };
    let url = crate::prometheus::redacted(&config.prometheus.url);
    // The probe is a real query with every parameter and header a run sends.
    let probed = match collector::probe_windows(&prometheus, hour.end()).await {
        Ok(w) => w,
        Err(e) => {
            lines.fail("prometheus", e.to_string(), exit::COLLECT);
            lines.fail(
                "data",
                "not checked: Prometheus does not answer".into(),
                exit::COLLECT,
            );
            return None;
        }
    };
    let params: Vec<String> = config
        .prometheus
        .extra_params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    lines.ok(
        "prometheus",
        format!(
            "{url} answers, credentials accepted{}{}",
            if params.is_empty() {
                String::new()
            } else {
                format!(", parameters {} accepted", params.join(" "))
            },
            if config.prometheus.scope.is_empty() {
                String::new()
            } else {
                format!(", every query scoped to {{{}}}", config.prometheus.scope)
            }
        ),
    );
    let windows = config.collect.windows.unwrap_or(probed);
    match config.collect.windows {
        Some(w) if w != probed => lines.fail(
            "windows",
            format!(
                "--window-semantics says {w}, the engine's probe says {probed}: every hour \
                 edge would be billed wrong; remove --window-semantics"
            ),
            exit::COLLECT,
        ),
        _ => lines.ok("windows", format!("{probed} range windows")),
    }
    Some((prometheus, windows))
}

/// The data's own labels: `honor_labels` (no `exported_namespace`), one cluster within the
/// selector, and kube-state-metrics' targets.
async fn data_checks(
    config: &Config,
    prometheus: &Prometheus,
    windows: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let labels_q = queries::data_labels(
        windows,
        config.collect.request_model == queries::RequestModel::Pod,
    );
    match at_end(prometheus, "data labels", &labels_q, hour).await {
        Err(e) => lines.fail("honor_labels", e, exit::COLLECT),
        Ok(answer) => match collector::check_data_labels(&answer, std::slice::from_ref(hour)) {
            Err(e @ collector::CollectError::SidecarsUnlabelled { .. }) => {
                lines.fail("init containers", e.to_string(), exit::COLLECT);
            }
            Err(e) => lines.fail("honor_labels", e.to_string(), exit::COLLECT),
            Ok(()) => lines.ok(
                "honor_labels",
                "no exported_namespace or exported_pod".into(),
            ),
        },
    }
    let namespaces_q = queries::namespace_samples(windows);
    match at_end(prometheus, "namespaces", &namespaces_q, hour).await {
        Err(e) => lines.fail("clusters", e, exit::COLLECT),
        Ok(answer) => {
            let label = &config.collect.cluster_label;
            let (seen, judged) = collector::check_clusters(
                &answer,
                std::slice::from_ref(hour),
                label,
                !config.prometheus.scope.is_empty(),
            );
            match judged {
                Err(e) => lines.fail("clusters", e.to_string(), exit::COLLECT),
                // Nothing within the selector is not one cluster: most likely a typo in it.
                Ok(()) if seen.is_empty() && !config.prometheus.scope.is_empty() => lines.fail(
                    "clusters",
                    format!(
                        "--prometheus-selector {} matches no namespaces' phase series in this \
                         hour: correct the selector (a run says which values the cluster label \
                         has outside it); do not move the checkpoint",
                        config.prometheus.scope
                    ),
                    exit::COLLECT,
                ),
                Ok(()) => lines.ok(
                    "clusters",
                    match seen.first() {
                        Some(one) if one.is_empty() => {
                            format!("one cluster (no {label} label on the series)")
                        }
                        Some(one) => format!("one cluster ({label}=\"{one}\")"),
                        None => "no namespaces' phase series".into(),
                    },
                ),
            }
        }
    }
    match at_end(prometheus, "exporters", &queries::exporters(windows), hour).await {
        Ok(s) if !s.is_empty() => lines.ok(
            "kube-state-metrics",
            format!(
                "{} targets write the namespaces' phase (replicas and restarts are counted \
                 once each)",
                s.len()
            ),
        ),
        Ok(_) => lines.fail(
            "kube-state-metrics",
            "no target writes kube_namespace_status_phase in this hour".into(),
            exit::COLLECT,
        ),
        Err(e) => lines.fail("kube-state-metrics", e, exit::COLLECT),
    }
}

/// The hour collected as a run collects it, every refusal of the collector included, with the
/// scrape interval, the sources' time, the GPUs and the requests checked on the way.
async fn hour_checks(
    config: &Config,
    prometheus: &Prometheus,
    windows: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    // Last: the hour as a run collects it, every refusal of the collector included.
    let collect = {
        let mut c = config.collect.clone();
        c.windows = Some(windows);
        c
    };
    let collector = match Collector::connect(prometheus, &collect, hour.end()).await {
        Ok(c) => c,
        Err(e) => return lines.fail("hour", e.to_string(), exit::COLLECT),
    };
    match collector.scrape_interval(std::slice::from_ref(hour)).await {
        Ok(d) => lines.ok(
            "scrape interval",
            format!(
                "{d:?} ({})",
                if config.collect.scrape_interval.is_some() {
                    "--scrape-interval"
                } else {
                    "of the typical namespace"
                }
            ),
        ),
        Err(e) => lines.fail("scrape interval", e.to_string(), exit::COLLECT),
    }
    let time = time_checks(&collector, config, hour, lines).await;
    gpu_checks(&collector, config, hour, lines).await;
    request_checks(&collector, config, prometheus, windows, hour, lines).await;
    let seen = at_end(
        prometheus,
        "namespaces",
        &queries::values_of(
            windows,
            "kube_namespace_status_phase",
            "namespace",
            "phase=\"Active\"",
        ),
        hour,
    )
    .await
    .map(|s| s.len())
    .unwrap_or(0);
    // The store's time read once: the lines above showed it, the hour is collected with it.
    let span = std::slice::from_ref(hour);
    let collected = match &time {
        Some(time) => collector.collect_span_at(span, time).await,
        None => collector.collect_span(span).await,
    };
    match collected {
        Ok(Collected {
            refused: Some(e), ..
        }) => lines.fail("hour", e.to_string(), exit::COLLECT),
        Ok(collected) if collected.waiting.is_some() => {
            if let Some(w) = collected.waiting {
                lines.warn(
                    "hour",
                    format!(
                        "the store does not hold {hour} in full yet (newest {} sample {}): a \
                         scheduled run waits for it and bills it when the data is in",
                        w.source,
                        w.newest_text()
                    ),
                );
            }
        }
        Ok(collected) => {
            let billed = collected
                .usage
                .hours()
                .next()
                .map_or(0, |h| h.namespaces.len());
            lines.ok(
                "hour",
                format!(
                    "a run bills {billed} namespaces for {hour} ({} excluded by \
                     --exclude-namespaces)",
                    seen.saturating_sub(billed)
                ),
            );
        }
        Err(e) => lines.fail("hour", e.to_string(), exit::COLLECT),
    }
}
