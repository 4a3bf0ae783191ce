//! Storage: PVC requests per storage class and access mode.

use super::*;

/// GiB-hours of PVC requests per namespace, StorageClass and access (`rwx="true"|"false"`), per
/// second a sample stands for (`weigh` as for [`gpu`]).
pub fn storage(w: Windows, weigh: Option<SampleWeight>) -> String {
    let h = w.hour();
    let pvc = "namespace, persistentvolumeclaim";
    // Summed over series like the pods' Running samples ([`requested`]).
    let requested = gauge_sum(
        w,
        "kube_persistentvolumeclaim_resource_requests_storage_bytes",
        pvc,
        weigh,
    );
    let class =
        format!("max by ({pvc}, storageclass) (max_over_time(kube_persistentvolumeclaim_info{h}))");
    let rwx = format!(
        "label_replace(max by ({pvc}) (max_over_time(\
         kube_persistentvolumeclaim_access_mode{{access_mode=\"ReadWriteMany\"}}{h})), \
         \"rwx\", \"true\", \"\", \"\")"
    );
    let rwo = format!(
        "label_replace(max by ({pvc}) (max_over_time(kube_persistentvolumeclaim_info{h})), \
         \"rwx\", \"false\", \"\", \"\")"
    );
    let access = block("(", &[&rwx, &format!("or on ({pvc})"), &rwo], ")");
    block(
        "sum by (namespace, storageclass, rwx) (",
        &[
            &requested,
            &format!("* on ({pvc}) group_left (storageclass)"),
            &class,
            &format!("* on ({pvc}) group_left (rwx)"),
            &access,
        ],
        ") / 3600 / 1073741824",
    )
}
