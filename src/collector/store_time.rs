//! The store's time: how far each source's samples reach, whether an hour is held in full
//! or waits for remote write, and whether a source stopped for good (`--max-source-silence`).

use super::*;

impl Collector<'_> {
    /// The store's time for `span`: kube-state-metrics' scrape timeline around it, and each
    /// source's newest sample from a few hours before it to after it. Two small queries side
    /// by side.
    pub async fn time_of(&self, span: &[HourWindow]) -> Result<StoreTime> {
        let (Some(first), Some(last)) = (span.first(), span.last()) else {
            return Ok(StoreTime::default());
        };
        let margin = self.config.max_scrape_gap + Duration::from_secs(60);
        let margin_ms = margin.as_millis();
        let span_ms = u128::try_from((last.end() - first.start()).num_milliseconds()).unwrap_or(0);
        let reference = &self.config.reference_namespace;
        let at = last.end() + chrono::TimeDelta::from_std(margin).unwrap_or_default();
        let times_q = queries::scrape_times(self.windows, reference, span_ms + 2 * margin_ms);
        let (read, devices) = self.sources();
        let newest_q = queries::newest_samples(
            reference,
            read,
            &self
                .prometheus
                .provenance()
                .targets(crate::provenance::Source::KubeStateMetrics),
        );
        let targets_from = first.start() - chrono::TimeDelta::hours(1);
        let lookback = chrono::TimeDelta::hours(NEWEST_LOOKBACK_HOURS);
        let (samples, mut newest, targets, dcgm) = tokio::try_join!(
            async {
                Ok::<_, CollectError>(
                    self.prometheus
                        .query_samples(&SampleQuery {
                            what: "scrape times",
                            expr: &times_q,
                            at,
                        })
                        .await?,
                )
            },
            async {
                Ok(self
                    .prometheus
                    .query_range(&RangeQuery {
                        what: "newest samples",
                        expr: &newest_q,
                        start: first.start() - lookback,
                        end: at,
                        step: NEWEST_STEP,
                    })
                    .await?)
            },
            self.targets_of(span, at),
            async {
                if devices {
                    self.newest_dcgm(first.start() - lookback, at).await
                } else {
                    Ok(Vec::new())
                }
            },
        )?;
        newest.extend(dcgm);
        let timeline = timeline::Timeline::new(
            samples
                .iter()
                .map(|s| {
                    let namespace = s.labels.get("namespace").cloned().unwrap_or_default();
                    (namespace, s.points.iter().map(|(t, _)| *t).collect())
                })
                .collect(),
        );
        let mut sources = sources_read(read, devices);
        let (store, scheduler_seen) = newest_per_source(&newest, &mut sources);
        // The store's time for this cluster: kube-state-metrics' targets' `up`, else the
        // newest of the sources themselves.
        let frontier = store.max(sources.values().flatten().copied().max());
        let looked_from = (first.start() - lookback).timestamp_millis();
        if sources.get(queries::KSM).is_some_and(Option::is_none) {
            // Scraped without honor_labels, the reference's namespace is the exporter's own:
            // that is the news, not a missing namespace.
            let labels_q = queries::data_labels(self.windows, false);
            labels::check(&self.query("data labels", &labels_q, span).await?, span)?;
            // Data after the span: the store lost these hours (retention, an outage), it does
            // not lag.
            if self.samples_after(last.end()).await? {
                return Err(CollectError::NoData {
                    hour: first.to_string(),
                    end: rfc3339(first.end()),
                });
            }
            if self.prometheus.is_scoped() {
                self.selector_matches_something(at).await?;
            }
            self.believed_somewhere(queries::KSM, at).await?;
            self.stopped(&sources, frontier, looked_from, true)?;
            return Err(CollectError::NoReference {
                namespace: reference.clone(),
                from: rfc3339(first.start() - lookback),
                to: rfc3339(at),
            });
        }
        // The namespaces are there but a family the bill reads is not: every namespace would
        // be billed 0 for it. A namespace may use nothing; a whole cluster may not.
        if let Some((source, _)) = sources.iter().find(|(_, t)| t.is_none()) {
            self.believed_somewhere(source, at).await?;
            self.stopped(&sources, frontier, looked_from, false)?;
            let (whence, advice) = missing_source(source, reference);
            return Err(CollectError::MissingSource {
                metric: queries::source_metric(source).to_string(),
                whence,
                advice,
                from: rfc3339(first.start() - lookback),
                to: rfc3339(at),
            });
        }
        self.target_stopped(&targets, frontier)?;
        self.stopped(&sources, frontier, looked_from, false)?;
        Ok(StoreTime {
            timeline,
            sources,
            scheduler_seen,
            targets,
            targets_from: targets_from.timestamp_millis(),
        })
    }

    /// dcgm-exporter's newest `up` ([`queries::newest_dcgm`]) at each step from `from` to
    /// `at`: the last half hour first, and the whole range only when that holds none (the
    /// exporter stopped or lags), so that a fleet scraped as usual is looked up at 8 steps, not
    /// at every step of hours.
    async fn newest_dcgm(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Series>> {
        let expr = queries::newest_dcgm(
            &self
                .prometheus
                .provenance()
                .targets(crate::provenance::Source::DcgmExporter),
        );
        let recent = (at - chrono::TimeDelta::minutes(32)).max(from);
        for start in [recent, from] {
            let answer = self
                .prometheus
                .query_range(&RangeQuery {
                    what: "dcgm-exporter's newest scrape",
                    expr: &expr,
                    start,
                    end: at,
                    step: NEWEST_STEP,
                })
                .await?;
            if answer.iter().any(|s| !s.points.is_empty()) || start == from {
                return Ok(answer);
            }
        }
        Ok(Vec::new())
    }

    /// What a run of this configuration reads beside kube-state-metrics' families
    /// ([`queries::Sources`]), and whether dcgm-exporter's devices are a source.
    fn sources(&self) -> (queries::Sources, bool) {
        let devices = self.config.gpu_source == GpuSource::Devices;
        let read = queries::Sources {
            usage: self.config.cpu_basis != CpuBasis::Request,
            gpu_models: !devices && !self.config.gpu_models.is_empty(),
            scheduler: self.config.request_model == RequestModel::Scheduler,
        };
        (read, devices)
    }

    /// When a source's believed series are missing: whether other jobs write its metric.
    /// Then the default matchers miss the platform's exporter (another job name), or only a
    /// tenant writes it; either way the operator must say which job is the platform's.
    pub(super) async fn believed_somewhere(
        &self,
        source: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let metric = queries::source_metric(source);
        let Some(kind) = crate::provenance::Source::of_metric(metric) else {
            return Ok(());
        };
        let matchers = self.prometheus.provenance().of(kind);
        if matchers.is_empty() {
            return Ok(());
        }
        let q = queries::jobs_writing_recently(metric, NEWEST_LOOKBACK_HOURS);
        let answer = self
            .prometheus
            .query_range_every_job(&RangeQuery::at(
                "jobs writing a source's metric (outside its provenance)",
                &q,
                at,
            ))
            .await?;
        if answer.is_empty() {
            return Ok(());
        }
        let jobs: Vec<String> = answer
            .iter()
            .map(|s| {
                let job = s.labels.get("job").map(String::as_str).unwrap_or("");
                let n = s.points.last().map(|(_, v)| *v).unwrap_or(0.0);
                format!("{job:?} ({n} series)")
            })
            .collect();
        Err(CollectError::NotBelieved {
            exporter: kind.name(),
            metric: metric.to_string(),
            matchers: matchers.to_string(),
            jobs: jobs.join(", "),
            flag: kind.flag(),
            env: kind.env(),
        })
    }

    /// When `--prometheus-selector` is set and the store holds nothing within it: whether the
    /// store holds the reference namespace without the selector, and with which values of the
    /// cluster label. A typo in the selector (`cluster="eats"`) then says so, instead of
    /// reading as lost data (whose remedy, moving the checkpoint, would skip billing data that
    /// exists).
    pub(super) async fn selector_matches_something(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let label = &self.config.cluster_label;
        let q = format!(
            "group by ({label}) (last_over_time(kube_namespace_status_phase{{namespace=~\"{}\"}}[1h]))",
            self.config.reference_namespace
        );
        let answer = self
            .prometheus
            .query_range_unscoped(&RangeQuery::at(
                "cluster label values (outside the selector)",
                &q,
                at,
            ))
            .await?;
        if answer.is_empty() {
            return Ok(());
        }
        let mut values: Vec<String> = answer
            .iter()
            .map(|s| {
                s.labels
                    .get(label)
                    .map_or_else(|| "(none)".to_string(), |v| format!("{v:?}"))
            })
            .collect();
        values.sort();
        values.dedup();
        Err(CollectError::SelectorMatchesNothing {
            selector: self.prometheus.scope_text(),
            label: label.clone(),
            values: values.join(", "),
        })
    }

    /// Whether the store holds a sample of the reference namespace's phase between `after`
    /// and the run's clock: one count of few samples, sent only when the span has none.
    pub(super) async fn samples_after(&self, after: chrono::DateTime<chrono::Utc>) -> Result<bool> {
        let now = self.config.now.max(after);
        let len = u128::try_from((now - after).num_milliseconds()).unwrap_or(0);
        if len == 0 {
            return Ok(false);
        }
        let q = queries::samples_since(self.windows, &self.config.reference_namespace, len);
        let answer = self
            .prometheus
            .query_range(&RangeQuery::at("samples after the hours", &q, now))
            .await?;
        Ok(answer.iter().flat_map(|s| &s.points).any(|(_, v)| *v > 0.0))
    }
}

/// How far before a span the newest samples are looked for: a store lagging more than this
/// (or without the reference namespace) is refused rather than waited for.
pub(super) const NEWEST_LOOKBACK_HOURS: i64 = 6;

/// The newest-samples query's step: under Prometheus's default lookback (5 minutes), so that
/// every sample is within the lookback of some evaluation.
pub(super) const NEWEST_STEP: Duration = Duration::from_secs(240);

/// An hour the store does not hold in full yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub hour: HourWindow,
    /// The source that lags most.
    pub source: String,
    /// Its newest sample (Unix milliseconds), if it has one since the lookback.
    pub newest: Option<i64>,
}

impl Waiting {
    /// The refusal of a run that may not wait (a dry-run, a backfill, an audit's recompute).
    pub fn refusal(&self) -> CollectError {
        CollectError::Incomplete {
            hour: self.hour.to_string(),
            exporter: self.source.clone(),
            newest: self.newest_text(),
            lag: self
                .lag()
                .map(|l| {
                    format!(
                        ", {} before the hour's end",
                        humantime::format_duration(Duration::from_secs(l.as_secs()))
                    )
                })
                .unwrap_or_default(),
        }
    }

    /// How far the source's newest sample lies before the hour's end.
    pub fn lag(&self) -> Option<Duration> {
        let end = self.hour.end().timestamp_millis();
        self.newest
            .map(|t| Duration::from_millis(u64::try_from(end - t).unwrap_or(0)))
    }

    pub fn newest_text(&self) -> String {
        self.newest
            .map(rfc3339_millis)
            .unwrap_or_else(|| format!("none in the {NEWEST_LOOKBACK_HOURS} hours before"))
    }
}

/// What the store holds of a span's time.
#[derive(Debug, Default)]
pub struct StoreTime {
    pub timeline: timeline::Timeline,
    /// Per source read, its newest sample (Unix milliseconds).
    pub sources: BTreeMap<String, Option<i64>>,
    /// Whether kube-scheduler's `kube_pod_resource_request` is in the store around the span
    /// (whichever source the requests are read from).
    pub scheduler_seen: bool,
    /// Per kube-state-metrics target (`instance`: a shard, a replica, a pod after a restart),
    /// its data's and its `up`'s times from the hour before the span on.
    pub targets: BTreeMap<String, timeline::TargetTime>,
    /// Where the targets' read began (Unix milliseconds).
    pub targets_from: i64,
}

impl StoreTime {
    /// Where kube-state-metrics targets' series end or begin ([`timeline::splits`]).
    pub fn splits(&self) -> Vec<i64> {
        let step = i64::try_from(NEWEST_STEP.as_millis()).unwrap_or(i64::MAX);
        timeline::splits(&self.targets, self.targets_from, step)
    }

    /// How `hour` is weighed ([`timeline::weigh_split`]).
    pub fn weigh(
        &self,
        hour: &HourWindow,
        max_gap: Duration,
    ) -> std::result::Result<timeline::Weighing, timeline::Unweighable> {
        timeline::weigh_split(&self.timeline, hour, max_gap, &self.splits())
    }

    /// The first hour of `span` some source has not reached.
    pub fn waiting(&self, span: &[HourWindow]) -> Option<Waiting> {
        let tolerance = self.timeline.tolerance_ms();
        let source = timeline::first_incomplete(span, &self.sources, tolerance).map(
            |(hour, source, newest)| Waiting {
                hour: *hour,
                source,
                newest,
            },
        );
        let target = timeline::first_target_behind(span, &self.targets, tolerance).map(
            |(hour, instance, newest)| Waiting {
                hour: *hour,
                source: target_name(instance),
                newest,
            },
        );
        // A target behind while Prometheus scrapes it names the shard to look at; its
        // families lag with it.
        match (source, target) {
            (Some(s), Some(t)) if t.hour <= s.hour => Some(t),
            (s, t) => s.or(t),
        }
    }
}

/// For [`CollectError::MissingSource`]: where the source's series were looked for, and what
/// to do, by the exporter that writes it.
pub(super) fn missing_source(source: &str, reference: &str) -> (String, String) {
    let in_reference = format!("in the reference namespaces ({reference})");
    let reference_advice = "or set --reference-namespace (REFERENCE_NAMESPACE) to namespaces \
                            with running pods";
    match source {
        queries::DCGM => (
            "of any device".into(),
            "Scrape the platform's dcgm-exporter (the GPU Operator's nvidia-dcgm-exporter, or \
             the dcgm-exporter chart's) and pick it with --dcgm-exporter-selector \
             (DCGM_EXPORTER_SELECTOR), or bill GPUs by the pods' requests with --gpu-source \
             requests (GPU_SOURCE)"
                .into(),
        ),
        queries::CADVISOR => (
            in_reference,
            format!(
                "Scrape the kubelets' cAdvisor (/metrics/cadvisor) and pick it with \
                 --cadvisor-selector, bill --cpu-basis request, {reference_advice}"
            ),
        ),
        queries::SCHEDULER_METRIC => (
            in_reference,
            format!(
                "Scrape kube-scheduler's /metrics/resources (with honor_labels) and pick it \
                 with --scheduler-selector (SCHEDULER_SELECTOR), bill the containers' requests \
                 with --request-source kube-state-metrics, {reference_advice}"
            ),
        ),
        _ => (
            in_reference,
            format!(
                "Scrape kube-state-metrics with the collector that writes it (pods, nodes) and \
                 pick it with --kube-state-metrics-selector, {reference_advice}"
            ),
        ),
    }
}

/// Each source's newest sample (Unix milliseconds) from the newest-samples answer, into
/// `sources`; the store's own newest (`up` of kube-state-metrics' targets), and whether
/// kube-scheduler's requests were seen at all.
fn newest_per_source(
    newest: &[Series],
    sources: &mut BTreeMap<String, Option<i64>>,
) -> (Option<i64>, bool) {
    let mut store = None;
    let mut scheduler_seen = false;
    for s in newest {
        let Some(source) = s.labels.get("source") else {
            continue;
        };
        scheduler_seen |= source == queries::SCHEDULER_METRIC && !s.points.is_empty();
        let newest = s
            .points
            .iter()
            .map(|(_, v)| *v)
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        if !newest.is_finite() {
            continue;
        }
        let newest = (newest * 1000.0).round() as i64;
        if source == queries::STORE {
            store = Some(newest);
        } else if let Some(slot) = sources.get_mut(source) {
            *slot = Some(newest);
        }
    }
    (store, scheduler_seen)
}

/// The sources a run of this configuration reads, each with no newest sample yet:
/// kube-state-metrics' families always, cAdvisor for usage, dcgm-exporter for devices,
/// kube-scheduler's requests, the nodes' GPU products for models.
fn sources_read(read: queries::Sources, devices: bool) -> BTreeMap<String, Option<i64>> {
    let queries::Sources {
        usage,
        gpu_models,
        scheduler,
    } = read;
    let mut sources: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for source in [
        queries::KSM,
        "kube_pod_status_phase",
        "kube_pod_container_resource_requests",
    ] {
        sources.insert(source.to_string(), None);
    }
    if usage {
        sources.insert(queries::CADVISOR.to_string(), None);
    }
    if devices {
        sources.insert(queries::DCGM.to_string(), None);
    }
    if scheduler {
        for source in [queries::SCHEDULER_METRIC, "kube_pod_status_qos_class"] {
            sources.insert(source.to_string(), None);
        }
    }
    if gpu_models {
        for source in ["kube_pod_info", "kube_node_labels"] {
            sources.insert(source.to_string(), None);
        }
    }
    sources
}
