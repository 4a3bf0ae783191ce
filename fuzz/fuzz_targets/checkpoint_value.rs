//! Any text as a checkpoint value (file or ConfigMap): no panic; an accepted value is an
//! hour's start at or before now, and writing it back reads the same hour.
#![no_main]
use consumption_metrics::checkpoint::parse_value;
use consumption_metrics::window::rfc3339;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let now = chrono::DateTime::from_timestamp(1_795_343_400, 0).unwrap();
    if let Ok(hour) = parse_value("fuzz", text, now) {
        assert!(hour.start() <= now);
        let again = parse_value("fuzz", &rfc3339(hour.start()), now).unwrap();
        assert_eq!(again, hour);
    }
});
