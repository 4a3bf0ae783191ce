//! The ConfigMap checkpoint through a real `kube::Client` over an in-memory Kubernetes API
//! (no API server can run here): first run, stale resourceVersion, malformed value, RBAC 403,
//! a missing ConfigMap (created, or refused before anything is sent), never backwards, and a whole publishing run advancing it hour by hour.

mod common;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use consumption_metrics::checkpoint::{Checkpoint, CheckpointError, ConfigMapCheckpoint};
// The publishing runs go to librdkafka's mock cluster (the `test-hooks` feature).
#[cfg(feature = "test-hooks")]
use consumption_metrics::manager::{Manager, RunReport};
#[cfg(feature = "test-hooks")]
use consumption_metrics::prometheus::Prometheus;
use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

const NS: &str = "billing";
const NAME: &str = "consumption-metrics-checkpoint";

/// A tiny stateful API server for one ConfigMap: GET and PUT with resourceVersion checks.
#[derive(Default)]
struct FakeApi {
    object: Option<Value>,
    version: u64,
    forbidden: bool,
    /// Whether POST (create) is allowed; the shipped Role does not grant it.
    may_create: bool,
    /// Whether PUT (update) is refused: a Role that grants `get` only.
    read_only: bool,
    requests: Vec<String>,
}

impl FakeApi {
    fn with_data(data: Value) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(FakeApi {
            object: Some(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": NAME, "namespace": NS, "resourceVersion": "1"},
                "data": data,
            })),
            version: 1,
            ..Default::default()
        }))
    }

    /// Another writer changes the ConfigMap.
    fn bump(&mut self) {
        self.version += 1;
        if let Some(o) = &mut self.object {
            o["metadata"]["resourceVersion"] = json!(self.version.to_string());
        }
    }

    fn value(&self) -> Option<String> {
        self.object.as_ref()?["data"]["lastPublishedTime"]
            .as_str()
            .map(String::from)
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code.as_u16()});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn client(state: Arc<Mutex<FakeApi>>) -> kube::Client {
    let service = tower::service_fn(move |req: Request<Body>| {
        let state = state.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect_bytes().await.unwrap_or_default();
            let mut s = state.lock().unwrap();
            let path = parts.uri.path().to_string();
            let dry_run = parts.uri.query().unwrap_or_default().contains("dryRun=All");
            let shown = if dry_run { " (dry run)" } else { "" };
            s.requests.push(format!("{} {path}{shown}", parts.method));
            let own = format!("/api/v1/namespaces/{NS}/configmaps/{NAME}");
            let resp = if s.forbidden {
                status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "configmaps is forbidden: User \"system:serviceaccount:billing:cm\" cannot get resource",
                )
            } else if parts.method == http::Method::POST
                && path == format!("/api/v1/namespaces/{NS}/configmaps")
            {
                if !s.may_create {
                    status(
                        StatusCode::FORBIDDEN,
                        "Forbidden",
                        "configmaps is forbidden: User \"system:serviceaccount:billing:cm\" cannot create resource",
                    )
                } else if s.object.is_some() {
                    status(StatusCode::CONFLICT, "AlreadyExists", "already exists")
                } else {
                    let mut sent: Value = serde_json::from_slice(&body).unwrap();
                    // A dry run is authorized and validated as a real create, stored nowhere.
                    if !dry_run {
                        s.version += 1;
                        sent["metadata"]["resourceVersion"] = json!(s.version.to_string());
                        s.object = Some(sent.clone());
                    }
                    let mut r = Response::new(Body::from(serde_json::to_vec(&sent).unwrap()));
                    *r.status_mut() = StatusCode::CREATED;
                    r
                }
            } else if path != own || s.object.is_none() {
                status(StatusCode::NOT_FOUND, "NotFound", "configmaps not found")
            } else if parts.method == http::Method::GET {
                Response::new(Body::from(
                    serde_json::to_vec(s.object.as_ref().unwrap()).unwrap(),
                ))
            } else if parts.method == http::Method::PUT && s.read_only {
                status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "configmaps is forbidden: User \"system:serviceaccount:billing:cm\" cannot update resource",
                )
            } else if parts.method == http::Method::PUT {
                let mut sent: Value = serde_json::from_slice(&body).unwrap();
                let precondition = sent["metadata"]["resourceVersion"]
                    .as_str()
                    .map(String::from);
                if precondition != Some(s.version.to_string()) {
                    status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified",
                    )
                } else if dry_run {
                    // Checked and authorized as a real update, stored nowhere.
                    Response::new(Body::from(serde_json::to_vec(&sent).unwrap()))
                } else {
                    s.version += 1;
                    sent["metadata"]["resourceVersion"] = json!(s.version.to_string());
                    s.object = Some(sent.clone());
                    Response::new(Body::from(serde_json::to_vec(&sent).unwrap()))
                }
            } else {
                status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "unexpected",
                )
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    kube::Client::new(service, NS)
}

fn store(state: &Arc<Mutex<FakeApi>>) -> Checkpoint {
    Checkpoint::ConfigMap(Box::new(ConfigMapCheckpoint::new(
        client(state.clone()),
        NS,
        NAME,
    )))
}

#[cfg(feature = "test-hooks")]
type Mock = rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// librdkafka's mock cluster with the topic `mcmp` (plaintext: the `test-hooks` feature).
#[cfg(feature = "test-hooks")]
fn mock_kafka() -> Mock {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    mock.create_topic("mcmp", 1, 1).unwrap();
    mock
}

/// The topic of `mock` holds no record.
#[cfg(feature = "test-hooks")]
fn assert_nothing_published(mock: &Mock) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "check")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks("mcmp", 0, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(high - low, 0, "nothing may be published");
}

/// A scheduled run at 04:10 over the standard Prometheus, publishing to `mock`, with the
/// checkpoint in the fake API's ConfigMap.
#[cfg(feature = "test-hooks")]
async fn scheduled_run(
    api: &Arc<Mutex<FakeApi>>,
    mock: &Mock,
) -> consumption_metrics::Result<RunReport> {
    let config = common::publishing_config(
        &common::standard().url,
        "2026-11-01T04:10:00Z",
        common::mock_kafka_settings(mock.bootstrap_servers(), "mcmp"),
    );
    let prometheus = Prometheus::new(&config.prometheus).unwrap();
    let checkpoint = store(api);
    Manager::with_checkpoint(config, prometheus, checkpoint)
        .run()
        .await
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-22T12:00:00Z";

#[tokio::test]
async fn a_missing_key_is_a_first_run_and_advancing_writes_it_with_a_precondition() {
    let api = FakeApi::with_data(json!({}));
    let mut cp = store(&api);
    assert_eq!(cp.load(t(NOW)).await.unwrap(), None);
    cp.advance(t("2026-11-22T10:00:00Z"), t(NOW)).await.unwrap();
    cp.advance(t("2026-11-22T11:00:00Z"), t(NOW)).await.unwrap();
    let s = api.lock().unwrap();
    assert_eq!(s.value().as_deref(), Some("2026-11-22T11:00:00Z"));
    assert_eq!(
        s.version, 3,
        "two updates, each accepted against the version read"
    );
    assert_eq!(
        s.requests,
        vec![
            format!("GET /api/v1/namespaces/{NS}/configmaps/{NAME}"),
            format!("PUT /api/v1/namespaces/{NS}/configmaps/{NAME}"),
            format!("PUT /api/v1/namespaces/{NS}/configmaps/{NAME}"),
        ]
    );
}

#[tokio::test]
async fn a_stale_resource_version_stops_the_run() {
    let api = FakeApi::with_data(json!({"lastPublishedTime": "2026-11-22T09:00:00Z"}));
    let mut cp = store(&api);
    assert_eq!(
        cp.load(t(NOW)).await.unwrap().unwrap().start(),
        t("2026-11-22T09:00:00Z")
    );
    api.lock().unwrap().bump();
    let e = cp
        .advance(t("2026-11-22T10:00:00Z"), t(NOW))
        .await
        .unwrap_err();
    assert!(matches!(e, CheckpointError::Conflict { .. }), "{e}");
    assert!(
        e.to_string().contains("another run is probably active"),
        "{e}"
    );
    assert_eq!(
        api.lock().unwrap().value().as_deref(),
        Some("2026-11-22T09:00:00Z")
    );
}

#[tokio::test]
async fn a_malformed_or_future_value_is_refused() {
    let api = FakeApi::with_data(json!({"lastPublishedTime": "yesterday"}));
    let e = store(&api).load(t(NOW)).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Malformed { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("ConfigMap {NS}/{NAME} key lastPublishedTime")),
        "{e}"
    );
    let api = FakeApi::with_data(json!({"lastPublishedTime": "2026-12-01T00:00:00Z"}));
    let e = store(&api).load(t(NOW)).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Future { .. }), "{e}");
}

#[tokio::test]
async fn rbac_403_names_the_permission_to_grant() {
    let api = FakeApi::with_data(json!({}));
    api.lock().unwrap().forbidden = true;
    let e = store(&api).load(t(NOW)).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Forbidden { .. }), "{e}");
    assert!(e.to_string().contains("grant get and update"), "{e}");
}

/// No ConfigMap at all: a first run, and the ConfigMap is created before anything is sent.
#[tokio::test]
async fn a_missing_configmap_is_a_first_run_and_created_before_publishing() {
    let api = Arc::new(Mutex::new(FakeApi {
        may_create: true,
        ..Default::default()
    }));
    let mut cp = store(&api);
    assert_eq!(cp.load(t(NOW)).await.unwrap(), None);
    cp.prepare().await.unwrap();
    cp.advance(t("2026-11-22T11:00:00Z"), t(NOW)).await.unwrap();
    let s = api.lock().unwrap();
    assert_eq!(s.value().as_deref(), Some("2026-11-22T11:00:00Z"));
    assert_eq!(
        s.requests,
        vec![
            format!("GET /api/v1/namespaces/{NS}/configmaps/{NAME}"),
            format!("POST /api/v1/namespaces/{NS}/configmaps"),
            format!("PUT /api/v1/namespaces/{NS}/configmaps/{NAME}"),
        ]
    );
}

/// The shipped Role cannot create ConfigMaps: a missing one stops a publishing run before it
/// sends anything, saying how to restore it.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_configmap_that_may_not_be_created_stops_before_publishing() {
    let mock = mock_kafka();
    let api = Arc::new(Mutex::new(FakeApi::default()));
    let e = scheduled_run(&api, &mock).await.unwrap_err();
    assert_eq!(e.exit_code(), consumption_metrics::exit::CHECKPOINT, "{e}");
    let text = e.to_string();
    assert!(text.contains("may not create it"), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    assert!(text.contains("kubectl create configmap"), "{text}");
    assert!(api.lock().unwrap().object.is_none());

    assert_nothing_published(&mock);
}

/// A blank value (`lastPublishedTime: ""`, from `kubectl edit` or a GitOps manifest) is not a
/// first run: that would bill only the newest hour and never the ones in between.
#[tokio::test]
async fn a_blank_value_is_refused_and_only_an_absent_key_is_a_first_run() {
    for blank in ["", "  \n"] {
        let api = FakeApi::with_data(json!({ "lastPublishedTime": blank }));
        let e = store(&api).load(t(NOW)).await.unwrap_err();
        assert!(matches!(e, CheckpointError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains("Correct it"), "{e}");
        let e = consumption_metrics::Error::from(e);
        assert_eq!(e.exit_code(), consumption_metrics::exit::CHECKPOINT, "{e}");
    }
}

/// A Role that grants `get` but not `update`: the run stops before it sends anything, instead
/// of publishing the oldest hour again on every run and failing only at the write.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn a_configmap_that_may_not_be_updated_stops_before_publishing() {
    let mock = mock_kafka();
    let api = FakeApi::with_data(json!({"lastPublishedTime": "2026-11-01T01:00:00Z"}));
    api.lock().unwrap().read_only = true;
    let e = scheduled_run(&api, &mock).await.unwrap_err();
    assert_eq!(e.exit_code(), consumption_metrics::exit::CHECKPOINT, "{e}");
    let text = e.to_string();
    assert!(text.contains("may not update"), "{text}");
    assert!(text.contains("grant get and update"), "{text}");
    assert_eq!(
        api.lock().unwrap().value().as_deref(),
        Some("2026-11-01T01:00:00Z")
    );
    assert_nothing_published(&mock);
}

#[tokio::test]
async fn the_checkpoint_never_moves_backwards() {
    let api = FakeApi::with_data(json!({"lastPublishedTime": "2026-11-22T10:00:00Z"}));
    let mut cp = store(&api);
    cp.load(t(NOW)).await.unwrap();
    let e = cp
        .advance(t("2026-11-22T08:00:00Z"), t(NOW))
        .await
        .unwrap_err();
    assert!(matches!(e, CheckpointError::Overtaken { .. }), "{e}");
    assert_eq!(
        api.lock().unwrap().value().as_deref(),
        Some("2026-11-22T10:00:00Z")
    );
}

/// A scheduled run publishing to librdkafka's mock cluster advances the ConfigMap after each
/// acknowledged hour.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn a_publishing_run_advances_the_configmap_hour_by_hour() {
    let mock = mock_kafka();
    let api = FakeApi::with_data(json!({"lastPublishedTime": "2026-11-01T01:00:00Z"}));
    let report = scheduled_run(&api, &mock).await.unwrap();
    assert_eq!(report.published, 3);
    let s = api.lock().unwrap();
    assert_eq!(s.value().as_deref(), Some("2026-11-01T04:00:00Z"));
    let puts = s
        .requests
        .iter()
        .filter(|r| r.starts_with("PUT") && !r.ends_with("(dry run)"))
        .count();
    assert_eq!(puts, 3, "one precondition-guarded update per hour");
    assert_eq!(
        s.requests[1],
        format!("PUT /api/v1/namespaces/{NS}/configmaps/{NAME} (dry run)"),
        "the update is proven allowed before anything is sent"
    );
}

/// `check` never writes: for a missing ConfigMap it sends a dry-run create only, so the
/// README's recovery (re-create it with the last value) is not defeated by a ConfigMap without
/// the key, which the next run would take for a first run. For an existing one, a dry-run
/// update only.
#[tokio::test(flavor = "multi_thread")]
async fn check_writes_nothing_to_the_checkpoint() {
    use consumption_metrics::check::{self, CheckConfig, CheckFormat, Verdict};
    let check_config = CheckConfig {
        config: common::dry_run_config(&common::standard().url, "2026-11-01T05:30:00Z"),
        kafka: None,
        format: CheckFormat::Text,
        deadline: std::time::Duration::from_secs(300),
    };
    let line = |report: &check::CheckReport| {
        report
            .checks
            .iter()
            .find(|l| l.check == "checkpoint")
            .cloned()
            .expect("a checkpoint line")
    };

    let missing = Arc::new(Mutex::new(FakeApi {
        may_create: true,
        ..Default::default()
    }));
    let report = check::run_with_checkpoint(&check_config, Ok(store(&missing))).await;
    let l = line(&report);
    assert_eq!(l.verdict, Verdict::Warn, "{}", l.detail);
    assert!(l.detail.contains("created nothing"), "{}", l.detail);
    {
        let s = missing.lock().unwrap();
        assert!(s.object.is_none(), "check created the ConfigMap");
        assert_eq!(
            s.requests,
            vec![
                format!("GET /api/v1/namespaces/{NS}/configmaps/{NAME}"),
                format!("POST /api/v1/namespaces/{NS}/configmaps (dry run)"),
            ]
        );
    }

    let present = FakeApi::with_data(json!({"lastPublishedTime": "2026-11-01T03:00:00Z"}));
    let report = check::run_with_checkpoint(&check_config, Ok(store(&present))).await;
    let l = line(&report);
    assert_eq!(l.verdict, Verdict::Ok, "{}", l.detail);
    let s = present.lock().unwrap();
    assert_eq!(s.value().as_deref(), Some("2026-11-01T03:00:00Z"));
    assert_eq!(s.version, 1, "check changed the ConfigMap");
    assert!(
        s.requests
            .iter()
            .all(|r| r.starts_with("GET ") || r.ends_with("(dry run)")),
        "{:?}",
        s.requests
    );
}
