use super::*;

const THIRTY: Duration = Duration::from_secs(30);

/// What we send to Prometheus is reviewed like code: any change shows in the snapshot.
#[test]
fn queries_snapshot() {
    let w = Windows::Closed;
    let per_hour = SampleWeight::PerHour;
    let (all, steady) = (Namespaces::All, Counters::Steady);
    let exact = Counters::Exact { interval: THIRTY };
    let fallen = ["team-a".to_string(), "team-b".to_string()];
    let containers = CpuRead::Requested(RequestModel::Containers, None);
    insta::assert_snapshot!("cpu_request", cpu(w, containers, all));
    insta::assert_snapshot!("cpu_usage", cpu(w, CpuRead::Used(exact), all));
    insta::assert_snapshot!("cpu_max", cpu(w, CpuRead::Larger(per_hour, exact), all));
    insta::assert_snapshot!("cpu_usage_steady", cpu(w, CpuRead::Used(steady), all));
    let constant = SampleWeight::Constant(37.5);
    insta::assert_snapshot!(
        "cpu_max_steady",
        cpu(w, CpuRead::Larger(constant, steady), all)
    );
    insta::assert_snapshot!(
        "cpu_max_fallen",
        cpu(
            w,
            CpuRead::Larger(per_hour, exact),
            Namespaces::Only(&fallen)
        )
    );
    insta::assert_snapshot!("fallen_counters", fallen_counters(w));
    insta::assert_snapshot!("gpu", gpu(w, RequestModel::Containers, None, false));
    insta::assert_snapshot!("gpu_pod", gpu(w, RequestModel::Pod, None, false));
    insta::assert_snapshot!("gpu_by_model", gpu(w, RequestModel::Pod, None, true));
    let pod = CpuRead::Requested(RequestModel::Pod, None);
    insta::assert_snapshot!("cpu_request_pod", cpu(w, pod, all));
    insta::assert_snapshot!("storage", storage(w, None));
    insta::assert_snapshot!("namespaces", namespace_samples(w));
    insta::assert_snapshot!(
        "cpu_usage_left_open",
        cpu(Windows::LeftOpen, CpuRead::Used(exact), all)
    );
    let segments = SampleWeight::Segments(&SEGMENTS);
    insta::assert_snapshot!(
        "cpu_request_pod_segments",
        cpu(
            w,
            CpuRead::Requested(RequestModel::Pod, Some(segments)),
            all
        )
    );
    insta::assert_snapshot!("storage_segments", storage(w, Some(segments)));
    insta::assert_snapshot!(
        "cpu_max_segments",
        cpu(w, CpuRead::Larger(segments, steady), all)
    );
    insta::assert_snapshot!("scrape_times", scrape_times(w, "kube-system", 5_400_000));
    insta::assert_snapshot!(
        "newest_samples",
        newest_samples(
            "kube-system",
            Sources {
                usage: true,
                ..Sources::default()
            },
            r#"job="kube-state-metrics""#
        )
    );
    insta::assert_snapshot!(
        "target_times",
        target_times(r#"job="kube-state-metrics""#, "")
    );
}

/// An hour cut in three by a hole: before, the two samples beside it, after.
const SEGMENTS: [Segment; 3] = [
    Segment {
        len_ms: 1_215_000,
        offset_ms: 2_385_000,
        seconds: 30.0,
    },
    Segment {
        len_ms: 780_000,
        offset_ms: 1_605_000,
        seconds: 390.0,
    },
    Segment {
        len_ms: 1_605_000,
        offset_ms: 0,
        seconds: 30.0,
    },
];

/// The segments of an hour partition it: each weighed sum reads each sample once, and the
/// whole hour is covered, on either kind of engine.
#[test]
fn segments_partition_the_hour() {
    let total: u128 = SEGMENTS.iter().map(|s| s.len_ms).sum();
    assert_eq!(total, HOUR_MS);
    for w in [Windows::Closed, Windows::LeftOpen] {
        let q = storage(w, Some(SampleWeight::Segments(&SEGMENTS)));
        for s in SEGMENTS {
            assert!(q.contains(&w.select(s.len_ms, s.offset_ms)), "{q}");
        }
        assert_eq!(q.matches("\"segment\"").count(), 3, "{q}");
    }
}

/// Every query the job sends, one of each shape (the counts' weight and the namespaces'
/// scope vary only constants and matchers).
fn every_query() -> Vec<(&'static str, String)> {
    let mut all = Vec::new();
    let fallen = ["team-a".to_string()];
    let exact = Counters::Exact { interval: THIRTY };
    let mut reads = vec![
        CpuRead::Requested(RequestModel::Containers, None),
        CpuRead::Requested(RequestModel::Pod, None),
    ];
    for counters in [Counters::Steady, exact] {
        reads.push(CpuRead::Used(counters));
        reads.push(CpuRead::Larger(SampleWeight::PerHour, counters));
    }
    for w in [Windows::Closed, Windows::LeftOpen] {
        for read in &reads {
            for namespaces in [
                Namespaces::All,
                Namespaces::Only(&fallen),
                Namespaces::Half(Half::First),
            ] {
                all.push(("cpu", cpu(w, *read, namespaces)));
            }
        }
        for basis in [CpuBasis::Request, CpuBasis::Usage, CpuBasis::Max] {
            if let Some(q) = cpu_before_counts(
                w,
                basis,
                RequestModel::Containers,
                None,
                Namespaces::Half(Half::Second),
            ) {
                all.push(("cpu before counts", q));
            }
        }
        all.push(("fallen counters", fallen_counters(w)));
        all.push((
            "counter samples",
            counter_samples(w, 2, Namespaces::Only(&fallen)),
        ));
        all.push((
            "requested cpu seconds",
            requested_cpu_seconds(w, SampleWeight::PerHour, Namespaces::Only(&fallen)),
        ));
        all.push(("gpu", gpu(w, RequestModel::Containers, None, false)));
        all.push(("gpu (pod)", gpu(w, RequestModel::Pod, None, false)));
        all.push((
            "gpu (by model)",
            gpu(w, RequestModel::Containers, None, true),
        ));
        all.push(("memory (pod)", memory(w, RequestModel::Pod, None)));
        all.push((
            "memory (scheduler)",
            memory(w, RequestModel::Scheduler, Some(SampleWeight::PerHour)),
        ));
        all.push((
            "cpu (scheduler)",
            cpu(
                w,
                CpuRead::Requested(RequestModel::Scheduler, None),
                Namespaces::Half(Half::First),
            ),
        ));
        all.push((
            "gpu (scheduler)",
            gpu(w, RequestModel::Scheduler, None, true),
        ));
        all.push(("pods unseen by the scheduler", unseen_by_scheduler(w)));
        all.push((
            "memory (containers)",
            memory(w, RequestModel::Containers, None),
        ));
        all.push(("storage", storage(w, None)));
        all.push(("namespaces", namespace_samples(w)));
        all.push(("data labels", data_labels(w, true)));
        let segments = SampleWeight::Segments(&SEGMENTS);
        all.push(("storage (segments)", storage(w, Some(segments))));
        all.push((
            "gpu (segments)",
            gpu(w, RequestModel::Pod, Some(segments), false),
        ));
        all.push((
            "cpu (segments)",
            cpu(
                w,
                CpuRead::Requested(RequestModel::Containers, Some(segments)),
                Namespaces::All,
            ),
        ));
        all.push(("scrape times", scrape_times(w, "kube-system", HOUR_MS)));
    }
    all.push((
        "newest samples",
        newest_samples(
            "kube-system",
            Sources {
                usage: true,
                gpu_models: true,
                scheduler: true,
            },
            r#"job="kube-state-metrics""#,
        ),
    ));
    all.push((
        "newest dcgm-exporter",
        newest_dcgm(r#"job="nvidia-dcgm-exporter""#),
    ));
    for w in [Windows::Closed, Windows::LeftOpen] {
        all.push(("gpu devices", devices::samples(w, HOUR_MS)));
        all.push(("dra claims", dra_claims(w)));
        all.push(("dra claims (running)", running_pods(w, "a|b")));
    }
    all.push(("gpu model changes", gpu_model_changes(Windows::Closed)));
    all.push((
        "kube-state-metrics targets' times",
        target_times(r#"job="kube-state-metrics""#, "10\\.0\\.0\\.1:8080"),
    ));
    all.push((
        "kube-state-metrics targets before",
        targets_before(Windows::Closed),
    ));
    all.push(("probe", probe().to_string()));
    all.push((
        "requests kube-state-metrics cannot see",
        unseen_requests(false),
    ));
    all.push((
        "requests kube-state-metrics cannot see (scheduler)",
        unseen_requests(true),
    ));
    all
}

/// The longest queries of an unevenly scraped hour (each segment's own request average,
/// [`MAX_REQUEST_SEGMENTS`] of them), scoped to a cluster and with every source's
/// provenance, fit VictoriaMetrics' default `-search.maxQueryLen` (16 KB); an hour of more
/// segments goes in parts that partition them.
#[test]
fn segmented_requests_fit_victoria_metrics_query_length() {
    let scope = crate::scope::Scope::parse(r#"cluster="prod-alln-01""#).unwrap();
    let p = crate::provenance::Provenance::default();
    let four: Vec<Segment> = SEGMENTS.iter().chain(&SEGMENTS[..1]).copied().collect();
    for w in [Windows::Closed, Windows::LeftOpen] {
        let weigh = Some(SampleWeight::Segments(&four));
        for model in [
            RequestModel::Pod,
            RequestModel::Scheduler,
            RequestModel::Containers,
        ] {
            for q in [
                cpu(
                    w,
                    CpuRead::Requested(model, weigh),
                    Namespaces::Half(Half::First),
                ),
                memory(w, model, weigh),
                gpu(w, model, weigh, true),
            ] {
                let len = scope.apply_with(&q, &p).len();
                assert!(len < 16_384, "{model:?}: {len} bytes");
            }
        }
    }
    let nine: Vec<Segment> = (0..9).map(|i| SEGMENTS[i % 3]).collect();
    let parts = segment_parts(Some(SampleWeight::Segments(&nine)));
    let lens: Vec<usize> = parts
        .iter()
        .map(|p| match p {
            Some(SampleWeight::Segments(s)) => s.len(),
            _ => 0,
        })
        .collect();
    assert_eq!(lens, [4, 4, 1]);
    assert_eq!(segment_parts(None), [None]);
}

/// Every selector of a source's metric carries that source's provenance matchers, and a
/// selector by `__name__` names one source only (the client picks the matchers by the
/// name's literal start, so an alternation across sources would read one of them from the
/// other's job and miss it).
#[test]
fn every_selector_of_a_source_carries_its_provenance() {
    use crate::provenance::{Provenance, Source};
    let p = Provenance::default();
    let selector = regex::Regex::new(r#"([A-Za-z_:][A-Za-z0-9_:]*)?\{([^}]*)\}"#).unwrap();
    let named = regex::Regex::new(r#"__name__=~?"([^"]*)""#).unwrap();
    for (what, q) in every_query() {
        let scoped = crate::scope::Scope::default().apply_with(&q, &p);
        for c in selector.captures_iter(&scoped) {
            let inside = &c[2];
            let metric = match (c.get(1), named.captures(inside)) {
                (Some(m), _) => vec![m.as_str().to_string()],
                (None, Some(n)) => n[1].split('|').map(str::to_string).collect(),
                (None, None) => continue,
            };
            let sources: std::collections::BTreeSet<Option<Source>> =
                metric.iter().map(|m| Source::of_metric(m)).collect();
            assert_eq!(
                sources.len(),
                1,
                "{what}: one selector of two sources: {inside}"
            );
            if let Some(Some(source)) = sources.into_iter().next() {
                let matchers = p.of(source).to_string();
                assert!(
                    inside.contains(&matchers),
                    "{what}: {source}'s selector without {matchers}: {inside}"
                );
            }
        }
    }
}

/// `--prometheus-selector` reaches every selector of every query: each `{` opens with its
/// matchers, and no metric is read without braces.
#[test]
fn the_scope_is_in_every_selector_of_every_query() {
    let scope = crate::scope::Scope::parse(r#"cluster="east",prometheus_replica=~".+""#).unwrap();
    let matchers = r#"{cluster="east", prometheus_replica=~".+""#;
    let bare = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*\[").unwrap();
    for (what, q) in every_query() {
        let scoped = scope.apply(&q);
        let opened = scoped.matches('{').count();
        assert_eq!(
            scoped.matches(matchers).count(),
            opened,
            "{what}: a selector without the scope in\n{scoped}"
        );
        // And no metric is left without braces (`name[...]`).
        assert!(
            !bare.is_match(&scoped),
            "{what}: a bare selector in\n{scoped}"
        );
        assert!(opened >= q.matches('{').count(), "{what}");
        // Scoping never names a namespace or a time (the time reference names the ones
        // it reads, and nothing else).
        let reference = ["scrape times", "newest samples"].contains(&what);
        assert!(!scoped.contains("namespace=\""), "{what}: {scoped}");
        assert_eq!(
            scoped.contains("namespace=~\"kube-system"),
            reference,
            "{what}: {scoped}"
        );
        assert!(!scoped.contains('@'), "{scoped}");
    }
    insta::assert_snapshot!(
        "storage_scoped",
        scope.apply(&storage(Windows::Closed, None))
    );
    insta::assert_snapshot!(
        "data_labels_scoped",
        scope.apply(&data_labels(Windows::Closed, false))
    );
}

#[test]
fn no_query_names_a_namespace_or_a_time() {
    let w = Windows::LeftOpen;
    for q in [
        cpu(
            w,
            CpuRead::Larger(SampleWeight::PerHour, Counters::Exact { interval: THIRTY }),
            Namespaces::All,
        ),
        cpu(
            w,
            CpuRead::Larger(SampleWeight::Constant(30.0), Counters::Steady),
            Namespaces::All,
        ),
        fallen_counters(w),
        gpu(w, RequestModel::Containers, None, false),
        gpu(w, RequestModel::Pod, None, false),
        cpu(
            w,
            CpuRead::Requested(RequestModel::Pod, None),
            Namespaces::All,
        ),
        storage(w, None),
        namespace_samples(w),
        data_labels(w, true),
    ] {
        assert!(!q.contains("namespace=\""), "{q}");
        assert!(!q.contains("namespace!~"), "{q}");
        assert!(!q.contains('@'), "{q}");
    }
}

/// The exact part of a split CPU query narrows every selector of per-namespace data (the
/// `max` basis' requests too, or they would be read for every namespace), and never the
/// sample count behind the scrape-gap weight, which is global.
#[test]
fn the_exact_part_narrows_every_per_namespace_selector() {
    let fallen = ["team-a".to_string(), "team-b".to_string()];
    let only = Namespaces::Only(&fallen);
    let exact = Counters::Exact { interval: THIRTY };
    let max = CpuRead::Larger(SampleWeight::PerHour, exact);
    for read in [CpuRead::Used(exact), max] {
        let q = cpu(Windows::Closed, read, only);
        for (at, _) in q.match_indices('{') {
            // The weight's sample count is the hour's over the whole cluster.
            if q[..at].ends_with("kube_namespace_status_phase") {
                continue;
            }
            let braces = q[at + 1..].split('}').next().unwrap_or_default();
            assert!(
                braces.contains("namespace=~\"team-a|team-b\""),
                "{braces} in {q}"
            );
        }
    }
    let max = cpu(Windows::Closed, max, only);
    assert!(max.contains(
        "max(sum by (namespace) (count_over_time(kube_namespace_status_phase{phase=\"Active\"}["
    ));
}

/// The query sent before the sample counts are known: the request basis' by its model,
/// the usage basis' steady form, and none for the `max` basis, which needs their weight.
#[test]
fn the_cpu_query_before_the_counts() {
    let w = Windows::LeftOpen;
    let half = Namespaces::Half(Half::Second);
    for model in [RequestModel::Containers, RequestModel::Pod] {
        assert_eq!(
            cpu_before_counts(w, CpuBasis::Request, model, None, half),
            Some(cpu(w, CpuRead::Requested(model, None), half))
        );
        assert_eq!(
            cpu_before_counts(w, CpuBasis::Usage, model, None, half),
            Some(cpu(w, CpuRead::Used(Counters::Steady), half))
        );
        assert_eq!(cpu_before_counts(w, CpuBasis::Max, model, None, half), None);
    }
}

/// Each half's query narrows every per-namespace selector to its half (and the weight's
/// count to none), with a regular expression and its negation.
#[test]
fn halves_narrow_every_per_namespace_selector() {
    for read in [
        CpuRead::Requested(RequestModel::Containers, None),
        CpuRead::Requested(RequestModel::Pod, None),
        CpuRead::Used(Counters::Steady),
        CpuRead::Larger(SampleWeight::PerHour, Counters::Steady),
    ] {
        for (half, matcher) in [
            (Half::First, "namespace=~\".*[0-4a-m]\""),
            (Half::Second, "namespace!~\".*[0-4a-m]\""),
        ] {
            let q = cpu(Windows::Closed, read, Namespaces::Half(half));
            let mut selectors = 0;
            for (at, _) in q.match_indices('{') {
                if q[..at].ends_with("kube_namespace_status_phase") {
                    continue;
                }
                let braces = q[at + 1..].split('}').next().unwrap_or_default();
                assert!(braces.contains(matcher), "{braces} in {q}");
                selectors += 1;
            }
            assert!(selectors >= 2, "{q}");
        }
    }
}

/// The weight the collector applies is the one the `max` basis computes in the query.
#[test]
fn sample_weight_compensates_scrape_gaps() {
    assert_eq!(sample_weight(120.0), 30.0);
    // A gap: fewer samples stand for more seconds.
    assert_eq!(sample_weight(96.0), 37.5);
    // Two replicas, or a restart's halves summed: the same hour.
    assert_eq!(sample_weight(240.0), 15.0);
    assert_eq!(sample_weight(0.0), 3600.0);
}

#[test]
fn sample_weight_in_the_query_divides_the_hour() {
    let w = Windows::Closed;
    let per_hour = sample_seconds(w, SampleWeight::PerHour);
    assert!(
        per_hour.starts_with("scalar(3600 / clamp_min(max(sum by (namespace) (count_over_time("),
        "{per_hour}"
    );
    // A weight the collector knows for every hour of the span is sent as it is.
    assert_eq!(sample_seconds(w, SampleWeight::Constant(37.5)), "37.5");
}

/// Both forms select `[E - offset - len, E - offset)`: closed windows include their left
/// edge, so they are one millisecond shorter.
#[test]
fn selectors_cover_the_same_half_open_interval() {
    assert_eq!(Windows::Closed.hour(), "[3599999ms] offset 1ms");
    assert_eq!(Windows::LeftOpen.hour(), "[3600000ms] offset 1ms");
    assert_eq!(
        Windows::Closed.previous_hour(),
        "[3599999ms] offset 3600001ms"
    );
    assert_eq!(Windows::LeftOpen.two_hours(), "[7200000ms] offset 1ms");
    assert_eq!(
        Windows::LeftOpen.hour_start(THIRTY),
        "[30000ms] offset 3570001ms"
    );
    assert_eq!(windows_from_probe(61.0), Some(Windows::Closed));
    assert_eq!(windows_from_probe(60.0), Some(Windows::LeftOpen));
    assert_eq!(windows_from_probe(59.0), None);
}
