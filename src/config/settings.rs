//! Each component's settings from the flags, shared by the commands that use them (a run,
//! `check`, `audit`, `checkpoint`).

use super::*;

/// The largest `--max-message-bytes`: librdkafka refuses a `message.max.bytes` over 10⁹, and
/// the job sets it 64 KiB above ours (kafka::settings).
pub(crate) const MAX_MESSAGE_BYTES: usize = 1_000_000_000 - 64 * 1024;

/// The most hours one run bills (and plans): a leap year. Larger values would only let a run's
/// plan and messages grow with the checkpoint's age.
pub(crate) const MAX_HOURS_PER_RUN: u32 = 366 * 24;

/// Thanos querier parameters that keep a bill exact: replicas deduplicated, no partial answer
/// when a store is down, raw samples only (downsampled 5m/1h blocks would change every
/// integral). Prometheus, VictoriaMetrics and Mimir ignore them.
pub(crate) const THANOS_PARAMS: [(&str, &str); 3] = [
    ("dedup", "true"),
    ("partial_response", "false"),
    ("max_source_resolution", "0s"),
];

/// The parameters of `--prometheus-flavor`, and its checks.
pub(crate) fn flavor_params(
    args: &Args,
    headers: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    if args.prometheus_flavor == Flavor::Mimir
        && !headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-scope-orgid") && !v.trim().is_empty())
    {
        return Err(ConfigError::Usage(
            "--prometheus-flavor mimir needs the tenant: add --prometheus-header \
             X-Scope-OrgID=<tenant> (or PROMETHEUS_HEADERS)"
                .into(),
        ));
    }
    Ok(match args.prometheus_flavor {
        Flavor::Prometheus => Vec::new(),
        Flavor::Auto | Flavor::Thanos | Flavor::Mimir => THANOS_PARAMS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

/// Where the checkpoint lives: the ConfigMap when one is named, else the file.
pub fn checkpoint_config(args: &Args) -> CheckpointSettings {
    match &args.checkpoint_configmap {
        Some(name) if !name.trim().is_empty() => CheckpointSettings::ConfigMap {
            name: name.trim().to_string(),
            namespace: args
                .checkpoint_namespace
                .as_ref()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
        },
        _ => CheckpointSettings::File(args.checkpoint_file.clone()),
    }
}

/// The run's clock: `--now`, or the system's.
pub(crate) fn now(args: &Args, system_now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    match &args.now {
        Some(raw) => parse_time("--now", raw),
        None => Ok(system_now),
    }
}

/// `--max-hours-per-run`: the same bounds for a run and for `checkpoint show`'s account of one.
pub(crate) fn max_hours_per_run(args: &Args) -> Result<u32> {
    match args.max_hours_per_run {
        0 => Err(invalid("--max-hours-per-run", "0", "must be at least 1")),
        n if n > MAX_HOURS_PER_RUN => Err(invalid(
            "--max-hours-per-run",
            &n.to_string(),
            "must be at most 8784 (a leap year of hours); catch up over several runs",
        )),
        n => Ok(n),
    }
}

/// `--settle-delay`, at most a week: data that takes longer to arrive is a broken pipeline,
/// and a huge delay would make every hour look unsettled.
pub(crate) fn settle_delay(args: &Args) -> Result<Duration> {
    let d = parse_duration("--settle-delay", &args.settle_delay)?;
    if d > Duration::from_secs(7 * 24 * 3600) {
        return Err(invalid(
            "--settle-delay",
            &args.settle_delay,
            "must be at most 7d; hours are billed this long after they end",
        ));
    }
    Ok(d)
}

/// What a pod's request is and where it is read, from `--cpu-request-model` and
/// `--request-source`. kube-scheduler publishes one number per pod (`PodRequests`), so it has
/// no containers' model, and the `max` basis, which compares requests with usage per
/// container, cannot read it.
pub(crate) fn request_model(args: &Args) -> Result<crate::queries::RequestModel> {
    use crate::cli::{RequestModelArg, RequestSourceArg};
    use crate::queries::RequestModel;
    match (args.request_source, args.cpu_request_model) {
        (RequestSourceArg::KubeStateMetrics, RequestModelArg::Pod) => Ok(RequestModel::Pod),
        (RequestSourceArg::KubeStateMetrics, RequestModelArg::Containers) => {
            Ok(RequestModel::Containers)
        }
        (RequestSourceArg::Scheduler, RequestModelArg::Containers) => Err(ConfigError::Usage(
            "--request-source scheduler reads what kube-scheduler reserves per pod, which has \
             no containers' part: drop --cpu-request-model containers (CPU_REQUEST_MODEL), or \
             keep it with --request-source kube-state-metrics"
                .into(),
        )),
        (RequestSourceArg::Scheduler, RequestModelArg::Pod)
            if args.cpu_basis == crate::queries::CpuBasis::Max =>
        {
            Err(ConfigError::Usage(
                "--cpu-basis max compares requests with usage per container, and \
                 kube-scheduler publishes requests per pod: use --cpu-basis request or usage \
                 with --request-source scheduler, or --request-source kube-state-metrics \
                 with max"
                    .into(),
            ))
        }
        (RequestSourceArg::Scheduler, RequestModelArg::Pod) => Ok(RequestModel::Scheduler),
    }
}

/// `--prometheus-max-response-mib` in bytes: 1 MiB to 4 GiB.
pub(crate) fn max_response_bytes(args: &Args) -> Result<usize> {
    let mib = args.prometheus_max_response_mib;
    if !(1..=4096).contains(&mib) {
        return Err(invalid(
            "--prometheus-max-response-mib",
            &mib.to_string(),
            "must be between 1 and 4096",
        ));
    }
    Ok(mib as usize * 1024 * 1024)
}

/// `--cluster-name`: required by every mode, checked here (not by clap) so that `audit` can
/// take it after the subcommand.
pub(crate) fn cluster_name(args: &Args) -> Result<String> {
    let raw = args.cluster_name.as_deref().ok_or_else(|| {
        ConfigError::Usage(
            "--cluster-name (or CLUSTER_NAME) is required: the name of this cluster, for \
             example prod-alln-01"
                .into(),
        )
    })?;
    let name = raw.trim();
    if name.is_empty() {
        return Err(invalid("--cluster-name", raw, "must not be empty"));
    }
    // It starts every external_id and every message key (`<cluster>/<hour>`): no '/', no
    // quotes, spaces or control characters that the billing side would have to escape.
    // It is also a path segment of the self-metrics push (`.../cluster/<name>`): `.` or `..`
    // there would be resolved away, so it must begin and end with a letter or digit.
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    let edges = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > 253
        || !name.chars().all(ok)
        || !edges(name.chars().next())
        || !edges(name.chars().last())
    {
        return Err(invalid(
            "--cluster-name",
            raw,
            "use letters, digits, '-', '.' and '_' only, beginning and ending with a letter or \
             digit (at most 253), e.g. prod-alln-01",
        ));
    }
    Ok(name.to_string())
}

/// The messages' header fields and limits, validated: what a run shapes and what `audit`
/// expects every message under this cluster's key to carry.
pub(crate) fn message_config(args: &Args, cluster_name: &str) -> Result<MessageSettings> {
    for (flag, value) in [
        ("--service-name", &args.service_name),
        ("--service-version", &args.service_version),
        ("--service-location", &args.service_location),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(flag, value, "must not be empty"));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid(flag, value, "must not contain control characters"));
        }
    }
    if !(1024..=MAX_MESSAGE_BYTES).contains(&args.max_message_bytes) {
        return Err(invalid(
            "--max-message-bytes",
            &args.max_message_bytes.to_string(),
            "must be between 1024 and 999934464 (librdkafka's message.max.bytes limit of \
             1000000000, less the 64 KiB the job leaves for key, headers and batch)",
        ));
    }
    Ok(MessageSettings {
        cluster_name: cluster_name.to_string(),
        service_name: args.service_name.trim().to_string(),
        service_version: args.service_version.trim().to_string(),
        service_location: args.service_location.trim().to_string(),
        max_message_bytes: args.max_message_bytes,
        id_format: args.message_id_format,
    })
}

/// Publishing needs every Kafka flag: mutual TLS is not optional.
pub(crate) fn kafka_settings(args: &Args, audit: bool) -> Result<KafkaSettings> {
    let missing = |flag: &'static str| {
        ConfigError::Usage(if audit {
            format!(
                "audit reads the topic with the publishing settings and needs {flag} (or its \
                 environment variable)"
            )
        } else {
            format!(
                "publishing needs {flag} (or its environment variable); give it, or use \
                 --dry-run to print the messages instead"
            )
        })
    };
    let brokers = args
        .kafka_brokers
        .clone()
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| missing("--kafka-brokers"))?;
    let topic = args
        .kafka_topic
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| missing("--kafka-topic"))?;
    let tls = TlsFiles {
        ca: args.kafka_ca.clone().ok_or_else(|| missing("--kafka-ca"))?,
        cert: args
            .kafka_cert
            .clone()
            .ok_or_else(|| missing("--kafka-cert"))?,
        key: args
            .kafka_key
            .clone()
            .ok_or_else(|| missing("--kafka-key"))?,
    };
    // Not `invalid(..)`: the list may hold secrets, so only the reason (which names the key)
    // is printed.
    let properties = parse_properties(&args.kafka_properties)
        .map_err(|reason| ConfigError::Usage(format!("invalid --kafka-property: {reason}")))?;
    let delivery_timeout =
        parse_duration("--kafka-delivery-timeout", &args.kafka_delivery_timeout)?;
    if delivery_timeout < Duration::from_secs(1) {
        return Err(invalid(
            "--kafka-delivery-timeout",
            &args.kafka_delivery_timeout,
            "must be at least 1s",
        ));
    }
    Ok(KafkaSettings {
        brokers: brokers.trim().to_string(),
        topic: topic.trim().to_string(),
        transport: Transport::MutualTls(tls),
        properties,
        max_message_bytes: args.max_message_bytes,
        delivery_timeout,
        preflight_timeout: Duration::from_secs(10),
        cloudevents: args.kafka_cloudevents,
    })
}

/// `--since`/`--until` (a backfill) or neither (a scheduled run, from `--start-from` on a
/// first run), validated whatever the plan: a wrong value in the CronJob's settings shows on
/// a manual backfill too.
pub(crate) fn plan(args: &Args, now: DateTime<Utc>, settle_delay: Duration) -> Result<Plan> {
    let start_from = match &args.start_from {
        None => None,
        Some(raw) => {
            let t = parse_time("--start-from", raw)?;
            Some(HourWindow::starting_at(t, "--start-from")?)
        }
    };
    let plan = match (&args.since, &args.until) {
        (Some(since), Some(until)) => Plan::Backfill {
            hours: window::plan_backfill(
                parse_time("--since", since)?,
                parse_time("--until", until)?,
                now,
                settle_delay,
                args.max_hours_per_run,
            )?,
            advance_checkpoint: args.advance_checkpoint,
        },
        (None, None) => Plan::Scheduled { start_from },
        _ => {
            return Err(ConfigError::Usage(
                "--since and --until go together; give both for a backfill, or neither for \
                     a scheduled run"
                    .into(),
            ));
        }
    };
    Ok(plan)
}

/// The store's settings: its URL, credentials, headers, parameters, limits, selector and the
/// jobs believed per source.
pub(crate) fn prometheus_settings(args: &Args) -> Result<PrometheusSettings> {
    let timeout = parse_duration("--prometheus-timeout", &args.prometheus_timeout)?;
    let mut headers = parse_headers(&args.prometheus_headers)?;
    headers.extend(parse_header_files(&args.prometheus_header_files)?);
    if timeout.is_zero() {
        return Err(invalid(
            "--prometheus-timeout",
            &args.prometheus_timeout,
            "must be > 0",
        ));
    }

    Ok(PrometheusSettings {
        url: parse_http_url(
            "--prometheus-url",
            args.prometheus_url
                .as_deref()
                .ok_or_else(|| {
                    ConfigError::Usage(
                        "--prometheus-url (or PROMETHEUS_URL) is required: the base URL of the \
                 Prometheus HTTP API, for example http://prometheus:9090"
                            .into(),
                    )
                })?
                .trim(),
            "http://prometheus:9090",
        )?,
        bearer_token_file: args.prometheus_bearer_token_file.clone(),
        ca_file: args.prometheus_ca.clone(),
        client_cert: args
            .prometheus_cert
            .clone()
            .zip(args.prometheus_key.clone()),
        extra_params: flavor_params(args, &headers)?,
        headers,
        timeout,
        retries: args.prometheus_retries,
        allow_partial_data: args.allow_partial_data,
        max_response_bytes: max_response_bytes(args)?,
        scope: match args.prometheus_selector.as_deref().map(str::trim) {
            None | Some("") => Scope::default(),
            Some(raw) => Scope::parse(raw).map_err(|reason| {
                ConfigError::Usage(format!(
                    "invalid --prometheus-selector: {reason}; give label matchers in \
                     PromQL syntax, e.g. cluster=\"east\" or \
                     cluster=\"east\",prometheus_replica=~\".+\""
                ))
            })?,
        },
        provenance: crate::provenance::Provenance::parse(
            Some(&args.kube_state_metrics_selector),
            Some(&args.cadvisor_selector),
            Some(&args.dcgm_exporter_selector),
            Some(&args.scheduler_selector),
        )
        .map_err(ConfigError::Usage)?,
    })
}

/// The collector's settings: what is billed and how, and the rules of the data it believes.
pub(crate) fn collect_settings(args: &Args, now: DateTime<Utc>) -> Result<CollectSettings> {
    if !(1..=24).contains(&args.hours_per_query) {
        return Err(invalid(
            "--hours-per-query",
            &args.hours_per_query.to_string(),
            "must be between 1 and 24",
        ));
    }

    let scrape_interval = match args.scrape_interval.trim() {
        "auto" => None,
        raw => {
            let d = parse_duration("--scrape-interval", raw)?;
            if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                return Err(invalid(
                    "--scrape-interval",
                    raw,
                    "must be between 1s and 1h, or auto",
                ));
            }
            Some(d)
        }
    };
    // An empty list would bill kube-* and openshift-* without a word: "exclude nothing"
    // must be said with `none`.
    let patterns: Vec<&String> = args
        .exclude_namespaces
        .iter()
        .filter(|p| !p.trim().is_empty())
        .collect();
    if patterns.is_empty() {
        return Err(invalid(
            "--exclude-namespaces",
            &args.exclude_namespaces.join(","),
            "is empty, which would bill the system namespaces; give glob patterns (default \
                 kube-*,openshift-*), or `none` to bill every namespace",
        ));
    }
    let exclude_namespaces = patterns
        .into_iter()
        .filter(|p| p.trim() != "none")
        .map(|p| {
            glob::Pattern::new(p.trim())
                .map_err(|e| invalid("--exclude-namespaces", p, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;

    Ok(CollectSettings {
        cluster_label: cluster_label(&args.cluster_label)?,
        cpu_basis: args.cpu_basis,
        bill_memory: args.bill_memory,
        request_model: request_model(args)?,
        fallen_counters: args.fallen_counters,
        windows: match args.window_semantics {
            WindowSemantics::Auto => None,
            WindowSemantics::Closed => Some(crate::queries::Windows::Closed),
            WindowSemantics::LeftOpen => Some(crate::queries::Windows::LeftOpen),
        },
        scrape_interval,
        hours_per_query: args.hours_per_query as usize,
        storage_tiers: parse_tiers(&args.storage_tiers)?,
        exclude_namespaces,
        gpu_weights: crate::gpu::GpuWeights::parse(&args.gpu_resources)
            .map_err(|reason| ConfigError::Usage(format!("invalid --gpu-resource {reason}")))?,
        gpu_source: args.gpu_source,
        gpu_models: crate::gpu::GpuModels::parse(&args.gpu_models)
            .map_err(|reason| ConfigError::Usage(format!("invalid --gpu-model {reason}")))?,
        max_scrape_gap: max_scrape_gap(&args.max_scrape_gap)?,
        max_source_silence: max_source_silence(&args.max_source_silence)?,
        bill_incomplete: args.bill_incomplete,
        reference_namespace: reference_namespace(&args.reference_namespace)?,
        now,
    })
}

/// `--pushgateway-url`: where the run's own metrics go, under the dry-run's job for a dry-run.
pub(crate) fn pushgateway_settings(
    args: &Args,
    cluster_name: &str,
) -> Result<Option<crate::pushgateway::PushSettings>> {
    Ok(match args.pushgateway_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(crate::pushgateway::PushSettings {
            url: parse_http_url("--pushgateway-url", raw, "http://host:9091")?,
            // A dry-run publishes nothing: under the CronJob's key it would set
            // last_run_success 1 and silence the alerts on the runs that bill.
            job: if args.dry_run {
                crate::pushgateway::DRY_RUN_JOB
            } else {
                crate::pushgateway::JOB
            },
            cluster: cluster_name.to_string(),
            timeout: Duration::from_secs(10),
        }),
    })
}
