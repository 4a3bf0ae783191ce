//! GPUs as the collector reads them: the requests source's model changes and the DRA claims
//! it cannot see, and the devices source's hours ([`devices`]).

use super::*;

impl Collector<'_> {
    /// The first hour of `span` in which a node's GPU model label changed, with its refusal
    /// ([`queries::gpu_model_changes`]); read only with `--gpu-model` on the requests source.
    pub(super) async fn gpu_model_changed(
        &self,
        span: &[HourWindow],
    ) -> Result<Option<(usize, CollectError)>> {
        if span.is_empty()
            || self.config.gpu_source != GpuSource::Requests
            || self.config.gpu_models.is_empty()
        {
            return Ok(None);
        }
        let q = queries::gpu_model_changes(self.windows);
        let answer = self.query("gpu model changes", &q, span).await?;
        let first = answer
            .iter()
            .flat_map(|s| s.points.iter().map(move |(t, v)| (*t, v, s)))
            .filter(|(_, v, _)| **v > 1.0)
            .min_by_key(|(t, _, _)| *t);
        let Some((t, v, s)) = first else {
            return Ok(None);
        };
        let Some(at) = span.iter().position(|h| h.end().timestamp() == t) else {
            return Ok(None);
        };
        Ok(Some((
            at,
            CollectError::GpuModelChanged {
                hour: span[at].to_string(),
                node: s.labels.get("node").cloned().unwrap_or_default(),
                models: *v as usize,
            },
        )))
    }

    /// The pods of `span` that hold devices through Dynamic Resource Allocation, which the
    /// requests source bills 0 (they request no extended resource): Running pods with a
    /// ResourceClaim (`kube_pod_resourceclaim_info`), and pods dcgm-exporter attributes a
    /// device to through `dra_*` labels. One small read of two families absent from clusters
    /// without DRA (an index lookup); the pods' phases are read only when claims exist.
    /// Warned about once per run, naming `--gpu-source devices`.
    pub async fn dra_unseen(&self, span: &[HourWindow]) -> Result<BTreeSet<(String, String)>> {
        let claims_q = queries::dra_claims(self.windows);
        let answer = self.query("dra claims", &claims_q, span).await?;
        let mut by_hour: BTreeMap<i64, BTreeSet<(String, String)>> = BTreeMap::new();
        let mut claimed: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
        for s in &answer {
            let get = |k: &str| s.labels.get(k).filter(|v| !v.is_empty()).cloned();
            let pod = match (get("exported_namespace"), get("exported_pod")) {
                (Some(ns), Some(pod)) => (ns, pod),
                _ => match (get("namespace"), get("pod")) {
                    (Some(ns), Some(pod)) => (ns, pod),
                    _ => continue,
                },
            };
            if !crate::usage::is_namespace_name(&pod.0) || self.excluded(&pod.0) {
                continue;
            }
            let hours = s.points.iter().map(|(t, _)| *t);
            if s.labels.get("via").map(String::as_str) == Some("dcgm") {
                for t in hours {
                    by_hour.entry(t).or_default().insert(pod.clone());
                }
            } else {
                claimed.entry(pod).or_default().extend(hours);
            }
        }
        if !claimed.is_empty() {
            let namespaces: BTreeSet<&str> = claimed.keys().map(|(ns, _)| ns.as_str()).collect();
            let running_q = queries::running_pods(
                self.windows,
                &namespaces.into_iter().collect::<Vec<_>>().join("|"),
            );
            for s in self.query("dra claims (running)", &running_q, span).await? {
                let (Some(ns), Some(pod)) = (s.labels.get("namespace"), s.labels.get("pod")) else {
                    continue;
                };
                let key = (ns.clone(), pod.clone());
                let Some(hours) = claimed.get(&key) else {
                    continue;
                };
                for (t, _) in s.points.iter().filter(|(t, _)| hours.contains(t)) {
                    by_hour.entry(*t).or_default().insert(key.clone());
                }
            }
        }
        let pods: BTreeSet<(String, String)> = by_hour.into_values().flatten().collect();
        if !pods.is_empty() && self.first_warning("dra") {
            let shown: Vec<String> = pods
                .iter()
                .take(5)
                .map(|(n, p)| format!("{n}/{p}"))
                .collect();
            warn!(
                pods = pods.len(),
                first = %shown.join(", "),
                "pods hold devices through Dynamic Resource Allocation (ResourceClaims), which \
                 request no extended resource: --gpu-source requests bills their GPUs 0. Bill \
                 GPUs as the devices report them with --gpu-source devices (dcgm-exporter; \
                 docs/gpus.md)"
            );
        }
        Ok(pods)
    }

    /// GPU-hours of `span` from the devices (`--gpu-source devices`), one hour at a time: as
    /// series labelled `namespace` and `model` (the model key, `""` without `--gpu-model`),
    /// one point per hour at its end, for [`SpanUsage::add`].
    pub(super) async fn gpu_from_devices(&self, span: &[HourWindow]) -> Result<Vec<Series>> {
        let mut out: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
        for hour in span {
            let held = self.device_hour(hour).await?;
            for profile in held
                .unweighted
                .iter()
                .filter(|p| self.first_warning(&format!("mig {p}")))
            {
                warn!(
                    profile = %profile,
                    resource = %dcgm::mig_resource(profile),
                    "a MIG profile has no weight and its instances are billed 0; set \
                     --gpu-resource nvidia.com/mig-<profile>=<GPUs per instance>"
                );
            }
            if let Some(model) = held.unmapped.first() {
                return Err(if model.is_empty() {
                    CollectError::UnnamedGpuModel {
                        hour: hour.to_string(),
                    }
                } else {
                    CollectError::UnmappedGpuModel {
                        model: model.clone(),
                        hour: hour.to_string(),
                    }
                });
            }
            for ((namespace, key), secs) in held.held {
                out.entry((namespace, key))
                    .or_default()
                    .push((hour.end().timestamp(), secs / 3600.0));
            }
        }
        Ok(out
            .into_iter()
            .map(|((namespace, model), points)| Series {
                labels: BTreeMap::from([
                    ("namespace".to_string(), namespace),
                    ("model".to_string(), model),
                ]),
                points,
            })
            .collect())
    }
}
