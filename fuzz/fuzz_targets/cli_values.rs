//! Any text to the value parsers of the command line: times, durations, the StorageClass tier
//! map, GPU weights and Kafka properties. No panic; refusals never echo a secret value.
#![no_main]
use consumption_metrics::config::{parse_duration, parse_tiers, parse_time};
use consumption_metrics::gpu::GpuWeights;
use consumption_metrics::kafka::settings::parse_properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_time("--since", text);
    let _ = parse_duration("--settle-delay", text);
    let items: Vec<String> = text.split(',').map(str::to_string).collect();
    if let Ok(tiers) = parse_tiers(&items) {
        assert!(tiers.keys().all(|k| !k.is_empty()));
    }
    if let Ok(weights) = GpuWeights::parse(&items) {
        let _ = weights.describe();
    }
    // Every item as the value of a secret key: the refusal names the key, hides the value.
    let secret: Vec<String> = items.iter().map(|i| format!("sasl.password={i}")).collect();
    let e = parse_properties(&secret).expect_err("sasl.* is always refused");
    assert!(e.starts_with("sasl.password=<hidden> is refused"), "{e}");
});
