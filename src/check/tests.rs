use super::*;

/// A StorageClass named with a newline and an escape code cannot forge a report line.
#[test]
fn names_from_the_data_cannot_forge_lines() {
    let mut lines = Lines(Vec::new());
    lines.warn(
        "storageclass gold\nok    forged".to_string(),
        "\u{1b}[2Jcleared".into(),
    );
    let report = CheckReport {
        cluster: "c".into(),
        hour: "h".into(),
        checks: lines.0,
    };
    let text = report.to_text();
    assert!(!text.contains("\nok    forged"), "{text}");
    assert!(text.contains("gold\\nok"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
}

/// The size a failing line suggests fits, and one byte more of limit is not needed.
#[test]
fn the_suggested_message_size_fits_the_topic() {
    for limit in [100_000, 1_048_588, 10_000_000] {
        let max = usize::try_from(largest_fitting(limit)).unwrap();
        assert!(wire_bound(max) <= limit, "{limit}: {max}");
        assert!(wire_bound(max + 300) > limit, "{limit}: {max} is far below");
    }
    // Kafka's default topic limit holds the default --max-message-bytes.
    assert!(wire_bound(900_000) <= 1_048_588);
}

#[test]
fn a_topic_limit_below_a_part_fails_with_the_size_to_set() {
    let mut lines = Lines(Vec::new());
    message_size(&mut lines, 900_000, TopicLimit::Bytes(500_000));
    message_size(&mut lines, 900_000, TopicLimit::Bytes(1_048_588));
    message_size(&mut lines, 900_000, TopicLimit::NotReported);
    let verdicts: Vec<Verdict> = lines.0.iter().map(|l| l.verdict).collect();
    assert_eq!(verdicts, [Verdict::Fail, Verdict::Ok, Verdict::Warn]);
    assert!(
        lines.0[0]
            .detail
            .contains("lower --max-message-bytes to 493950"),
        "{}",
        lines.0[0].detail
    );
    assert_eq!(lines.0[0].class, exit::OUTPUT);
}
