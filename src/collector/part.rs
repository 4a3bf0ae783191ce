//! One part of a span: the queries of every dimension side by side, each answer checked and
//! added to the span's usage ([`SpanUsage::add`]).

use super::*;

impl Collector<'_> {
    /// Collect every hour of `span` (consecutive hours), one query per dimension; `segments`
    /// weighs the gauges of a one-hour span scraped unevenly.
    pub(super) async fn collect_part(
        &self,
        span: &[HourWindow],
        segments: Option<&[queries::Segment]>,
    ) -> Result<SpanUsage> {
        let PartAnswers {
            counts,
            cpu,
            gpu,
            storage,
            memory,
        } = self.read_part(span, segments).await?;
        let models = self.config.gpu_models.keys();
        let weights = Some(&counts.weights);
        // Counters (usage) are not samples; the max basis weighs in its query.
        let cpu_weights = (self.config.cpu_basis == CpuBasis::Request).then_some(&counts.weights);
        let (cpu_what, exact_what) = match self.config.cpu_basis {
            CpuBasis::Request => ("cpu (request)", ""),
            CpuBasis::Usage => ("cpu (usage)", "cpu (usage, fallen counters)"),
            CpuBasis::Max => ("cpu (max)", "cpu (max, fallen counters)"),
        };
        let excluded = |namespace: &str| self.excluded(namespace);
        let by_namespace = |what, series, weights| Answer {
            what,
            grouped_by: BY_NAMESPACE,
            series,
            weights,
        };
        let to = |d: Dimension| move |_: &Series| Ok(Adds::To(d, 1.0));

        let mut usage = SpanUsage::new(span, self.config.bill_memory, models.clone());
        usage.add(
            by_namespace("namespaces", counts.namespaces, None),
            excluded,
            |_| Ok(Adds::Nothing),
        )?;
        usage.add(
            by_namespace(cpu_what, cpu.steady, cpu_weights),
            excluded,
            to(Dimension::Cpu),
        )?;
        usage.add(
            by_namespace(exact_what, cpu.exact, cpu_weights),
            excluded,
            to(Dimension::Cpu),
        )?;
        usage.add(
            by_namespace("memory", memory, weights),
            excluded,
            to(Dimension::Ram),
        )?;
        self.add_gpu(&mut usage, span, gpu, weights)?;
        self.add_storage(&mut usage, storage, weights)?;
        Ok(usage)
    }

    /// Every answer of a part: what needs nothing from the sample counts goes beside them
    /// (GPU, storage, and the CPU the bases can ask for without them): with 2 cores, this
    /// saves the counts' time from every run's wall time. The data's labels are judged
    /// first, and several clusters are the news whatever else failed.
    async fn read_part(
        &self,
        span: &[HourWindow],
        segments: Option<&[queries::Segment]>,
    ) -> Result<PartAnswers> {
        let weigh = segments.map(SampleWeight::Segments);
        let devices = self.config.gpu_source == GpuSource::Devices;
        // Requests in parts of a many-segment hour ([`queries::segment_parts`]).
        let parts = queries::segment_parts(weigh);
        let (gpu_q, storage_q): (Vec<String>, String) = (
            parts
                .iter()
                .map(|weigh| {
                    queries::gpu(
                        self.windows,
                        self.config.request_model,
                        *weigh,
                        !devices && !self.config.gpu_models.keys().is_empty(),
                    )
                })
                .collect(),
            queries::storage(self.windows, weigh),
        );
        let memory_q: Vec<String> = if self.config.bill_memory {
            parts
                .iter()
                .map(|weigh| queries::memory(self.windows, self.config.request_model, *weigh))
                .collect()
        } else {
            Vec::new()
        };
        let labels_q =
            queries::data_labels(self.windows, self.config.request_model == RequestModel::Pod);
        // With the scheduler's requests: the pods it did not see, which it would bill 0.
        let unseen_q = (self.config.request_model == RequestModel::Scheduler)
            .then(|| queries::unseen_by_scheduler(self.windows));
        // The data's labels are judged first: exported labels make the other answers fail in
        // misleading ways, or pass wrong. (Several clusters are judged from the namespaces'
        // answer, before its counts: [`Collector::sample_counts`].)
        let (data_labels, answers) =
            tokio::join!(self.query("data labels", &labels_q, span), async {
                tokio::try_join!(
                    self.counts_and_cpu(span, weigh),
                    async {
                        if devices {
                            self.gpu_from_devices(span).await
                        } else {
                            Ok(add_up(self.query_together("gpu", &gpu_q, span).await?))
                        }
                    },
                    self.query("storage", &storage_q, span),
                    async {
                        Ok(add_up(
                            self.query_together("memory", &memory_q, span).await?,
                        ))
                    },
                    async {
                        match &unseen_q {
                            Some(q) => self.query("pods unseen by the scheduler", q, span).await,
                            None => Ok(Vec::new()),
                        }
                    },
                )
            });
        labels::check(&data_labels?, span)?;
        let ((counts, cpu), gpu, storage, memory, unseen) = match answers {
            Ok(answers) => answers,
            Err(e @ CollectError::MixedClusters { .. }) => return Err(e),
            // An unreachable or busy Prometheus is the news as it is (and asking it again
            // would only wait for its retries twice).
            Err(e) if matches!(&e, CollectError::Prometheus(p) if p.is_retryable()) => {
                return Err(e);
            }
            Err(e) => {
                // Several clusters make other queries fail in misleading ways (a join finding a
                // PVC twice, "a second exporter"), and the failure may have cancelled the
                // namespaces' answer they are judged from: judge them again, so that the
                // clusters are the news.
                self.one_cluster_again(span).await?;
                return Err(e);
            }
        };
        scheduler_saw_every_pod(&unseen, span, |ns| self.excluded(ns))?;
        Ok(PartAnswers {
            counts,
            cpu,
            gpu,
            storage,
            memory,
        })
    }

    /// The GPU answer added to `usage`: GPU-hours per namespace and model from the devices
    /// source, or requests weighed per resource (and keyed by the node's model).
    fn add_gpu(
        &self,
        usage: &mut SpanUsage,
        span: &[HourWindow],
        gpu: Vec<Series>,
        weights: Option<&BTreeMap<i64, f64>>,
    ) -> Result<()> {
        let devices = self.config.gpu_source == GpuSource::Devices;
        let models = self.config.gpu_models.keys();
        let excluded = |namespace: &str| self.excluded(namespace);
        let mut unknown = BTreeSet::new();
        if devices {
            // GPU-hours already, per namespace and model key.
            let gpu_answer = Answer {
                what: "gpu (devices)",
                grouped_by: &["namespace", "model"],
                series: gpu,
                weights: None,
            };
            usage.add(gpu_answer, excluded, |s| {
                let key = s.labels.get("model").map(String::as_str).unwrap_or("");
                Ok(match models.iter().position(|k| k == key) {
                    Some(i) => Adds::ToModel(i, 1.0),
                    None => Adds::To(Dimension::Gpu, 1.0),
                })
            })?;
        } else {
            let gpu_answer = Answer {
                what: "gpu",
                grouped_by: &["namespace", "resource", "model"],
                series: gpu,
                weights,
            };
            let held = |s: &Series| s.points.iter().any(|(_, v)| *v > 0.0);
            usage.add(gpu_answer, excluded, |s| {
                // kube-scheduler names the resource as Kubernetes does (`nvidia.com/gpu`),
                // kube-state-metrics as a label name; the weights know the latter.
                let resource = crate::gpu::ksm_name(
                    s.labels.get("resource").map(String::as_str).unwrap_or(""),
                );
                let resource = resource.as_str();
                Ok(match self.config.gpu_weights.weight(resource) {
                    Weight::Known(w) if models.is_empty() || !held(s) => {
                        Adds::To(Dimension::Gpu, w)
                    }
                    // `--gpu-model`: the node's GPU model names the key.
                    Weight::Known(w) => {
                        let namespace = s.labels.get("namespace").cloned().unwrap_or_default();
                        let hour = s
                            .points
                            .iter()
                            .find(|(_, v)| *v > 0.0)
                            .map(|(t, _)| validate::hour_of(span, *t))
                            .unwrap_or_default();
                        let model = s.labels.get("model").map(String::as_str).unwrap_or("");
                        if model.is_empty() {
                            return Err(CollectError::GpuModelUnknown {
                                namespace,
                                resource: resource.to_string(),
                                hour,
                            });
                        }
                        let key = self.config.gpu_models.key(model).ok_or_else(|| {
                            CollectError::UnmappedGpuModel {
                                model: model.to_string(),
                                hour: hour.clone(),
                            }
                        })?;
                        match models.iter().position(|k| k == key) {
                            Some(i) => Adds::ToModel(i, w),
                            None => Adds::To(Dimension::Gpu, w),
                        }
                    }
                    Weight::Unknown => {
                        unknown.insert(resource.to_string());
                        Adds::Nothing
                    }
                    Weight::SharedUnconfigured if held(s) => {
                        return Err(CollectError::SharedGpu {
                            resource: resource.to_string(),
                        });
                    }
                    Weight::SharedUnconfigured => Adds::Nothing,
                })
            })?;
        }
        for resource in unknown
            .into_iter()
            .filter(|r| self.first_warning(&format!("gpu {r}")))
        {
            warn!(
                resource,
                "a GPU-like extended resource has no weight and is billed 0; set \
                 --gpu-resource <name>=<GPUs per unit>"
            );
        }
        Ok(())
    }

    /// The storage answer added to `usage`: RWO as standard, RWX by its class's tier.
    fn add_storage(
        &self,
        usage: &mut SpanUsage,
        storage: Vec<Series>,
        weights: Option<&BTreeMap<i64, f64>>,
    ) -> Result<()> {
        let excluded = |namespace: &str| self.excluded(namespace);
        let mut unmapped = BTreeSet::new();
        let storage_answer = Answer {
            what: "storage",
            grouped_by: &["namespace", "storageclass", "rwx"],
            series: storage,
            weights,
        };
        usage.add(storage_answer, excluded, |s| {
            if s.labels.get("rwx").map(String::as_str) != Some("true") {
                return Ok(Adds::To(Dimension::StorageRwoStandard, 1.0));
            }
            let class = s
                .labels
                .get("storageclass")
                .map(String::as_str)
                .unwrap_or("");
            let tier = self.config.storage_tiers.get(class).copied();
            if tier.is_none() {
                unmapped.insert(class.to_string());
            }
            Ok(Adds::To(tier.unwrap_or(Tier::Standard).dimension(), 1.0))
        })?;
        for class in unmapped
            .into_iter()
            .filter(|c| self.first_warning(&format!("class {c}")))
        {
            warn!(
                storageclass = class,
                "RWX StorageClass has no tier (--storage-tier); billing it as standard"
            );
        }
        Ok(())
    }
}

/// A part's answers, read side by side.
struct PartAnswers {
    counts: interval::Counts,
    cpu: cpu::CpuAnswer,
    gpu: Vec<Series>,
    storage: Vec<Series>,
    memory: Vec<Series>,
}

/// The answers of queries that each give a part of the same sums (the segments of one hour,
/// [`queries::segment_parts`]) as one: the series of equal labels added point by point. An
/// answer of one query has each label set once, and passes unchanged.
pub(super) fn add_up(series: Vec<Series>) -> Vec<Series> {
    let mut sums: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut order = Vec::new();
    for s in series {
        let points = sums.entry(s.labels.clone()).or_insert_with(|| {
            order.push(s.labels.clone());
            BTreeMap::new()
        });
        for (t, v) in s.points {
            *points.entry(t).or_insert(0.0) += v;
        }
    }
    order
        .into_iter()
        .map(|labels| {
            let points = sums
                .remove(&labels)
                .unwrap_or_default()
                .into_iter()
                .collect();
            Series { labels, points }
        })
        .collect()
}

#[cfg(test)]
mod add_up_tests {
    use super::*;

    fn series(ns: &str, points: &[(i64, f64)]) -> Series {
        Series {
            labels: BTreeMap::from([("namespace".to_string(), ns.to_string())]),
            points: points.to_vec(),
        }
    }

    /// Parts of one hour's sums add up per label set and time; one answer passes unchanged.
    #[test]
    fn parts_add_up_and_a_single_answer_is_unchanged() {
        let one = vec![series("a", &[(3600, 1.5)]), series("b", &[(3600, 2.0)])];
        assert_eq!(add_up(one.clone()), one);
        let parts = vec![
            series("a", &[(3600, 1.0), (7200, 4.0)]),
            series("b", &[(3600, 2.0)]),
            series("a", &[(3600, 0.5)]),
        ];
        assert_eq!(
            add_up(parts),
            vec![
                series("a", &[(3600, 1.5), (7200, 4.0)]),
                series("b", &[(3600, 2.0)])
            ]
        );
    }
}
