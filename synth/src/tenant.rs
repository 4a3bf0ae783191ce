//! What tenants write into the same store: look-alikes of the platform's series, from their
//! own scrape jobs, that must change no bill and stop nothing (the job's provenance rules).
//!
//! Facts they rest on: Prometheus Operator names a job after the ServiceMonitor's Service (or
//! its `jobLabel`), so a tenant's own kube-state-metrics or dcgm-exporter behind a Service of
//! another name writes another `job` (prometheus-operator API reference,
//! `ServiceMonitorSpec.jobLabel`); a job scraped without `honor_labels` renames a scraped
//! `namespace` to `exported_namespace` (Prometheus configuration, `honor_labels`), which is how
//! a tenant's series can name another namespace; dcgm-exporter copies a device's series once
//! per pod holding it (`internal/pkg/transformation/kubernetes.go`), so a copy naming another
//! pod is indistinguishable by shape. Every series here carries `job="tenant-exporter"`.

use std::io::{self, Write};

use super::fleet::Fleet;
use super::model::Cluster;

/// The tenants' scrape job and target.
pub const JOB: &str = "tenant-exporter";
const INSTANCE: &str = "10.130.0.9:8080";

/// Write the look-alikes as OpenMetrics families (without `# EOF`), to be merged with the
/// cluster's ([`super::openmetrics::merge`]). `victims` are namespaces that exist all along;
/// `attacker` is the tenant's own.
pub fn write(cluster: &Cluster, out: &mut impl Write) -> io::Result<()> {
    let alive: Vec<&str> = cluster
        .namespaces
        .iter()
        .filter(|n| {
            n.created <= cluster.data_start
                && n.deleted >= cluster.data_end
                && !n.name.starts_with("kube-")
                && !n.name.starts_with("openshift-")
        })
        .map(|n| n.name.as_str())
        .collect();
    let (Some(attacker), Some(victim)) = (alive.first(), alive.get(1)) else {
        return Ok(());
    };
    let victim2 = alive.get(2).unwrap_or(victim);
    // Scraped by the same Prometheus (its outages too), 3 s after each tick.
    let times = cluster.scrape_times(3, &[]);
    let target = format!("job=\"{JOB}\",instance=\"{INSTANCE}\"");
    let mut family = |name: &str, series: &[(String, f64)]| -> io::Result<()> {
        writeln!(out, "# TYPE {name} gauge")?;
        for (labels, value) in series {
            let sep = if labels.is_empty() { "" } else { "," };
            for t in &times {
                writeln!(out, "{name}{{{target}{sep}{labels}}} {value} {t}")?;
            }
        }
        Ok(())
    };
    // A second writer of a namespace's phase: counted with the platform's, it would refuse
    // the hour (two exporters) or halve every sample's weight.
    family(
        "kube_namespace_status_phase",
        &[(format!("namespace=\"{victim}\",phase=\"Active\""), 1.0)],
    )?;
    // A ghost pod in the victim's namespace, and one naming it through exported_namespace
    // (which, believed, refuses every namespace's hour as a honor_labels fault).
    let ghost = format!("namespace=\"{victim}\",pod=\"ghost\",uid=\"ghost-uid\"");
    let exported = format!(
        "namespace=\"{attacker}\",exported_namespace=\"{victim}\",pod=\"x\",exported_pod=\"ghost-2\",uid=\"ghost-2-uid\""
    );
    family(
        "kube_pod_status_phase",
        &[
            (format!("{ghost},phase=\"Running\""), 1.0),
            (format!("{exported},phase=\"Running\""), 1.0),
        ],
    )?;
    family(
        "kube_pod_container_resource_requests",
        &[
            (
                format!("{ghost},container=\"c\",node=\"n\",resource=\"cpu\",unit=\"core\""),
                8.0,
            ),
            (
                format!(
                    "{ghost},container=\"c\",node=\"n\",resource=\"nvidia_com_gpu\",unit=\"integer\""
                ),
                1.0,
            ),
            (
                format!("{ghost},container=\"c\",node=\"n\",resource=\"memory\",unit=\"byte\""),
                64.0 * 1024.0 * 1024.0 * 1024.0,
            ),
        ],
    )?;
    if let Some(fleet) = &cluster.fleet {
        family(
            "DCGM_FI_DEV_FB_USED",
            &device_lookalikes(fleet, victim, victim2),
        )?;
    }
    family("up", &[(String::new(), 1.0)])?;
    Ok(())
}

/// dcgm-exporter look-alikes: a copy of a real device naming `victim` as its holder (which
/// believed would move half that device's GPU-hours there), a device no node has held by
/// `victim2` (one GPU more), and a series without `UUID` (which believed refuses the hour).
fn device_lookalikes(fleet: &Fleet, victim: &str, victim2: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(dev) = fleet.devices.iter().find(|d| d.mig.is_none()) {
        out.push((
            format!(
                "gpu=\"{}\",UUID=\"{}\",modelName=\"{}\",hostname=\"{}\",namespace=\"{victim}\",pod=\"copy\",container=\"c\"",
                dev.index, dev.uuid, dev.model, dev.node
            ),
            4096.0,
        ));
    }
    out.push((
        format!(
            "gpu=\"0\",UUID=\"GPU-00000000-dead-beef-0000-000000000000\",modelName=\"{}\",hostname=\"gpu-node-invented\",namespace=\"{victim2}\",pod=\"invented\",container=\"c\"",
            super::fleet::H100
        ),
        4096.0,
    ));
    out.push((
        format!(
            "gpu=\"0\",modelName=\"{}\",namespace=\"{victim2}\",pod=\"no-uuid\"",
            super::fleet::H100
        ),
        4096.0,
    ));
    out
}
