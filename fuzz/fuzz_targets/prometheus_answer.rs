//! Any bytes as a Prometheus answer, through the same `Answer::interpret` a real query uses:
//! no panic, and every accepted sample is finite-timestamped (whole-second for range queries).
#![no_main]
use consumption_metrics::prometheus::Answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the HTTP status and content type; the rest is the body.
    let (head, body) = data.split_first().unwrap_or((&0, &[]));
    let status = [200, 200, 200, 400, 422, 429, 500, 503][usize::from(*head % 8)];
    let content_type = if head & 8 == 0 { "application/json" } else { "text/html" };
    let secrets = vec!["s3cr3t-token".to_string()];
    let answer = Answer {
        url: "http://prometheus:9090",
        what: "fuzz",
        range: "evaluation times 0..=3600 step 3600s",
        status,
        content_type,
        retry_after: None,
        secrets: &secrets,
        allow_partial_data: head & 16 != 0,
    };
    // Range queries (whole-second times) and raw samples (milliseconds) alike.
    for result in [answer.interpret(body), answer.interpret_samples(body)] {
        match result {
            Ok(series) => {
                assert!(status == 200);
                for s in series {
                    for (_, v) in s.points {
                        let _ = v; // any f64; the collector judges values
                    }
                }
            }
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains("s3cr3t-token"), "a secret in an error: {text}");
            }
        }
    }
});
