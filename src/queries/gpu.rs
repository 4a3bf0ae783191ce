//! GPUs from the requests source: GPU-like extended resources requested by Running pods,
//! per model by the node's GPU Feature Discovery label, and the DRA claims it cannot see.

use super::*;

/// Hours of every GPU-like extended resource requested, per namespace and resource (the
/// kube-state-metrics name), per second a sample stands for; the collector weights each
/// resource into GPU-hours ([`crate::gpu`]), so that one query serves every MIG profile and
/// vendor. With `weigh` (an unevenly scraped hour's [`SampleWeight::Segments`]), in hours
/// already.
pub fn gpu(w: Windows, model: RequestModel, weigh: Option<SampleWeight>, by_model: bool) -> String {
    let matcher = format!("resource=~\"{GPU_RESOURCES}\"");
    let (requested, id) = match model {
        RequestModel::Containers => (
            requested(w, &matcher, "", ", resource", weigh),
            "namespace, pod, uid",
        ),
        RequestModel::Pod => (
            effective_requested(w, &matcher, "", None, weigh),
            "namespace, pod, uid",
        ),
        RequestModel::Scheduler => (
            scheduler_requested(w, &matcher, "", weigh),
            "namespace, pod",
        ),
    };
    if !by_model {
        return format!("sum by (namespace, resource) {requested} / 3600");
    }
    let models = match model {
        // The scheduler's pods have no `uid`: one model per pod name.
        RequestModel::Scheduler => format!("max by ({id}, model) ({})", pod_gpu_model(w)),
        _ => pod_gpu_model(w),
    };
    block(
        "sum by (namespace, resource, model) (",
        &[
            &requested,
            &format!("* on ({id}) group_left (model)"),
            &models,
        ],
        ") / 3600",
    )
}

/// The label kube-state-metrics writes for GPU Feature Discovery's node label
/// `nvidia.com/gpu.product` when `--metric-labels-allowlist=nodes=[nvidia.com/gpu.product]`
/// allows it on `kube_node_labels` (every character outside `[a-zA-Z0-9_]` as `_`, prefixed
/// `label_`).
pub const GPU_PRODUCT_LABEL: &str = "label_nvidia_com_gpu_product";

/// Per node whose GPU model label took more than one value in the hour (GPU Feature Discovery
/// relabels a node after a MIG reconfiguration or a GPU swap): how many, at each hour's end.
/// [`pod_gpu_model`] joins one model per node and hour; such an hour cannot be billed per model
/// by the requests source.
pub fn gpu_model_changes(w: Windows) -> String {
    let h = w.hour();
    format!(
        "count by (node) (max by (node, {GPU_PRODUCT_LABEL}) \
         (last_over_time(kube_node_labels{{{GPU_PRODUCT_LABEL}=~\".+\"}}{h}))) > 1"
    )
}

/// Per pod (`namespace, pod, uid`), the GPU model of its node as `model`: the node from
/// `kube_pod_info{node}`, the model from the node's [`GPU_PRODUCT_LABEL`] on
/// `kube_node_labels`. A pod whose node has no such label (or no `kube_node_labels`) keeps
/// `model=""`, which the collector refuses for a pod holding GPUs: models cannot be told apart.
pub(super) fn pod_gpu_model(w: Windows) -> String {
    let h = w.hour();
    let id = "namespace, pod, uid";
    let pod_node = format!("max by ({id}, node) (last_over_time(kube_pod_info{{node!=\"\"}}{h}))");
    let node_model =
        format!("max by (node, {GPU_PRODUCT_LABEL}) (last_over_time(kube_node_labels{h}))");
    let labelled = block(
        "(",
        &[
            &pod_node,
            &format!("* on (node) group_left ({GPU_PRODUCT_LABEL})"),
            &node_model,
        ],
        ")",
    );
    let per_pod = block(
        &format!("max by ({id}, {GPU_PRODUCT_LABEL}) ("),
        &[&labelled, &format!("or on ({id})"), &pod_node],
        ")",
    );
    format!("label_replace({per_pod}, \"model\", \"$1\", \"{GPU_PRODUCT_LABEL}\", \"(.*)\")")
}

/// Extended resources that may be GPUs: anything with `gpu` or `mig` in its name. One without
/// a weight is billed 0 with a warning, so a new kind is seen rather than silently ignored.
pub(super) const GPU_RESOURCES: &str = ".*(gpu|mig).*";

/// Per hour, the pods that may hold devices through Dynamic Resource Allocation: those with
/// a ResourceClaim (`via="claim"`; kube-state-metrics v2.20's `kube_pod_resourceclaim_info`,
/// one series per `pod.spec.resourceClaims` entry), and those dcgm-exporter attributes a
/// device to through its `dra_claim_name` label (`via="dcgm"`, with `exported_*` when scraped
/// without `honor_labels`). Both families are absent where DRA is not used: the read is an
/// index lookup there.
pub fn dra_claims(w: Windows) -> String {
    let h = w.hour();
    let claims = format!(
        "label_replace(group by (namespace, pod) (last_over_time(kube_pod_resourceclaim_info{h})),          \"via\", \"claim\", \"\", \"\")"
    );
    let devices = format!(
        "label_replace(group by (namespace, pod, exported_namespace, exported_pod)          (last_over_time({}{{dra_claim_name=~\".+\"}}{h})), \"via\", \"dcgm\", \"\", \"\")",
        crate::gpu::dcgm::METRIC
    );
    block("(", &[&claims, "or", &devices], ")")
}

/// Per hour, the pods of the namespaces `namespaces` (a regular-expression alternation of
/// checked names) that ran in it.
pub fn running_pods(w: Windows, namespaces: &str) -> String {
    format!(
        "group by (namespace, pod) (max_over_time(kube_pod_status_phase{{phase=\"Running\", \
         namespace=~\"{namespaces}\"}}{}) > 0)",
        w.hour()
    )
}
