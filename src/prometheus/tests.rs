use super::answer::*;
use super::transport::*;
use super::*;

/// Found by the prometheus_answer fuzz target: answer text that reaches an error (a
/// sample value, the error field, warnings) is scrubbed of our secrets and bounded.
#[test]
fn answer_text_in_errors_is_scrubbed_and_bounded() {
    let secrets = vec!["s3cr3t-token".to_string()];
    let answer = |status: u16| Answer {
        url: "http://p",
        what: "cpu",
        range: "r",
        status,
        content_type: "application/json",
        retry_after: None,
        secrets: &secrets,
        allow_partial_data: false,
    };
    let long = "x".repeat(5000);
    for (status, body) in [
        (200, format!(r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[[1,"{long} s3cr3t-token"]]}}]}}}}"#)),
        (200, r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"s3cr3t-token"]]}]}}"#.to_string()),
        (200, format!(r#"{{"status":"error","errorType":"x","error":"echo s3cr3t-token {long}"}}"#)),
        (200, r#"{"status":"success","warnings":["saw s3cr3t-token"],"data":{"resultType":"matrix","result":[]}}"#.to_string()),
        (500, format!(r#"{{"status":"error","errorType":"x","error":"{long} s3cr3t-token"}}"#)),
    ] {
        let e = answer(status).interpret(body.as_bytes()).unwrap_err().to_string();
        assert!(!e.contains("s3cr3t-token"), "{e}");
        assert!(e.len() < 600, "{} characters", e.len());
    }
}

/// Raw samples keep their millisecond times; range queries refuse a fraction of a second.
#[test]
fn sample_times_are_milliseconds() {
    let answer = Answer {
        url: "http://p",
        what: "cpu samples",
        range: "samples at 2026-11-01T04:00:00Z",
        status: 200,
        content_type: "application/json",
        retry_after: None,
        secrets: &[],
        allow_partial_data: false,
    };
    let body = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"namespace":"a"},"values":[[1793498400.007,"1.5"],[1793498430,"2"]]}]}}"#;
    let series = answer.interpret_samples(body).unwrap();
    assert_eq!(
        series[0].points,
        [(1_793_498_400_007, 1.5), (1_793_498_430_000, 2.0)]
    );
    let e = answer.interpret(body).unwrap_err().to_string();
    assert!(e.contains("unreadable sample"), "{e}");
}

#[test]
fn retry_after_is_seconds_or_an_http_date() {
    let now: DateTime<Utc> = "2015-10-21T07:27:00Z".parse().unwrap();
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    // A date in the past: retry now.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
}
