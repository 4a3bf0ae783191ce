//! Time: the store's retention against the checkpoint, and the currency of every source.

use super::*;

/// Whether the store still holds the hour a run would bill first.
pub(super) async fn retention_check(
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    next: Option<HourWindow>,
    lines: &mut Lines,
) {
    let (first, why) = match (next, &config.plan) {
        (Some(next), _) => (next, "the hour after the checkpoint"),
        (
            None,
            Plan::Scheduled {
                start_from: Some(h),
            },
        ) => (*h, "--start-from"),
        (None, _) => {
            return lines.ok(
                "retention",
                "no checkpoint yet: a first run bills the newest settled hour".into(),
            );
        }
    };
    let q = queries::present(w, "kube_namespace_status_phase", &["namespace"], "");
    match at_end(prometheus, "retention", &q, &first).await {
        Ok(s) if count(&s) > 0.0 => {
            lines.ok("retention", format!("the store holds {first}, {why}"))
        }
        Ok(_) => lines.fail(
            "retention",
            format!(
                "the store holds no data for {first}, {why}: a run stops there (exit 4). If the \
                 data is gone for good, move the checkpoint past it with `consumption-metrics \
                 checkpoint set --to <a later hour>` (docs/operating.md, Runbook)"
            ),
            exit::COLLECT,
        ),
        Err(e) => lines.fail("retention", e, exit::COLLECT),
    }
}

/// Time as the store has it, for the newest settled hour: each source's newest sample and its
/// lag behind the clock (a run waits for an hour whose end a source has not reached), and how
/// kube-state-metrics was scraped in the hour: evenly, with holes (bridged, or refused over
/// `--max-scrape-gap`), or with a changed interval.
pub(super) async fn time_checks(
    collector: &Collector<'_>,
    config: &Config,
    hour: &HourWindow,
    lines: &mut Lines,
) -> Option<collector::StoreTime> {
    let span = std::slice::from_ref(hour);
    let time = match collector.time_of(span).await {
        Ok(t) => t,
        Err(e) => {
            lines.fail("newest samples", e.to_string(), exit::COLLECT);
            return None;
        }
    };
    let waiting = time.waiting(span);
    // The families of kube-state-metrics share its scrapes: its line stands for them (one
    // missing fails `time_of`, above).
    let shown = time
        .sources
        .iter()
        .filter(|(s, _)| [queries::KSM, queries::CADVISOR].contains(&s.as_str()));
    for (source, newest) in shown {
        let check = format!("newest {source}");
        let Some(t) = newest.and_then(chrono::DateTime::from_timestamp_millis) else {
            lines.warn(
                &check,
                "no sample in the hours before the clock: a run waits for this source".into(),
            );
            continue;
        };
        let lag = (config.now - t).to_std().unwrap_or_default();
        let detail = format!(
            "{}, {} before the clock",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            humantime::format_duration(Duration::from_secs(lag.as_secs()))
        );
        match &waiting {
            Some(w) if &w.source == source => lines.warn(
                &check,
                format!(
                    "{detail}: the store does not hold {hour} in full yet, so a run waits for \
                     it (exit 0 when scheduled, 7 for a dry-run or backfill). If the lag \
                     persists, check the cluster's remote write and the store's ingestion \
                     (docs/operating.md, Runbook, ConsumptionMetricsHourWaitingForData)"
                ),
            ),
            _ => lines.ok(&check, detail),
        }
    }
    let interval = time
        .timeline
        .interval_ms()
        .map(|ms| format!("every {}s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "interval unknown".into());
    match time.weigh(hour, config.collect.max_scrape_gap) {
        Ok(collector::timeline::Weighing::Even) => lines.ok(
            "scrape timeline",
            format!("kube-state-metrics scraped evenly in {hour} ({interval}), no hole"),
        ),
        Ok(collector::timeline::Weighing::Segments {
            gaps, intervals, ..
        }) => {
            let holes: Vec<String> = gaps
                .iter()
                .map(|g| {
                    format!(
                        "{} without a sample from {}",
                        humantime::format_duration(Duration::from_secs(g.len().as_secs())),
                        crate::window::rfc3339_millis(g.from)
                    )
                })
                .collect();
            let times: Vec<String> = intervals
                .iter()
                .map(|ms| format!("{}s", *ms as f64 / 1000.0))
                .collect();
            lines.warn(
                "scrape timeline",
                format!(
                    "kube-state-metrics scraped unevenly in {hour}: {}{}; billed by the time \
                     each sample stands for (holes bridged from both sides). If a hole is a \
                     Prometheus restart or failed scrapes, check its uptime and the target's \
                     scrape errors; a retuned interval needs nothing",
                    if holes.is_empty() {
                        "no hole".to_string()
                    } else {
                        holes.join(", ")
                    },
                    if times.len() > 1 {
                        format!(
                            ", a sample stands for {} by turns (the interval changed)",
                            times.join(" then ")
                        )
                    } else {
                        String::new()
                    }
                ),
            );
        }
        Err(collector::timeline::Unweighable::TooLong(g)) => lines.fail(
            "scrape timeline",
            format!(
                "kube-state-metrics has no sample for {} from {} in {hour}, longer than \
                 --max-scrape-gap {}: a run refuses the hour (exit 4). Raise the flag for one \
                 run to bill it from both sides of the hole",
                humantime::format_duration(Duration::from_secs(g.len().as_secs())),
                crate::window::rfc3339_millis(g.from),
                humantime::format_duration(config.collect.max_scrape_gap)
            ),
            exit::COLLECT,
        ),
        Err(collector::timeline::Unweighable::NoSamples) => lines.fail(
            "scrape timeline",
            format!("kube-state-metrics has no sample in {hour} (see the retention line)"),
            exit::COLLECT,
        ),
    };
    Some(time)
}
