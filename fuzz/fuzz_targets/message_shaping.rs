//! Any namespaces and quantities through message shaping: no panic; whatever is shaped passes
//! the contract check, fits the size limit, and its JSON reads back equal.
#![no_main]
use std::collections::BTreeMap;

use consumption_metrics::usage::{HourUsage, NamespaceUsage};
use consumption_metrics::message::MessageSettings;
use consumption_metrics::message::{IdFormat, KafkaMessage, shape, validate};
use consumption_metrics::window::HourWindow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte's low bit picks the id format.
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let id_format = if first & 1 == 0 {
        IdFormat::Uuid
    } else {
        IdFormat::Legacy
    };
    let window = HourWindow::starting_at(
        chrono::DateTime::from_timestamp(1_795_341_600, 0).unwrap(),
        "fuzz",
    )
    .unwrap();
    let mut namespaces = BTreeMap::new();
    // Records of 1 length byte, a name, and six f64 quantities.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len % 70).min(tail.len());
        let (name, tail) = tail.split_at(len);
        if tail.len() < 48 {
            break;
        }
        let f = |i: usize| f64::from_le_bytes(tail[i * 8..i * 8 + 8].try_into().unwrap());
        namespaces.insert(
            String::from_utf8_lossy(name).into_owned(),
            NamespaceUsage {
                cpu: f(0),
                gpu: f(1),
                storage_rwo_standard: f(2),
                storage_rwx_standard: f(3),
                storage_rwx_basic: f(4),
                storage_rwx_premium: f(5),
                ram: None,
                gpu_models: Default::default(),
            },
        );
        rest = &tail[48..];
    }
    let config = MessageSettings {
        cluster_name: "fuzz-01".into(),
        service_name: "OPENSHIFT".into(),
        service_version: "GA".into(),
        service_location: "FUZZ".into(),
        max_message_bytes: 4096,
        id_format,
    };
    let hour = HourUsage { window, namespaces };
    if let Ok(messages) = shape(&hour, &config) {
        for m in messages {
            validate(&m, "fuzz-01", id_format).unwrap();
            let json = serde_json::to_vec(&m).unwrap();
            assert!(json.len() <= config.max_message_bytes);
            let back: KafkaMessage = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, m);
        }
    }
});
