//! Logs: `tracing` to stderr, filtered by `RUST_LOG` (default info); JSON in a cluster, text on
//! a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The log format (`--log-format`, mapped by the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// JSON unless stderr is a terminal.
    Auto,
}

/// Returns whether logs are JSON.
pub fn init(format: LogFormat) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // try_init: a second initialisation (tests) is harmless.
    let _ = if json {
        builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init()
    } else {
        let ansi = std::io::stderr().is_terminal();
        builder
            .with_writer(|| OneLine(std::io::stderr()))
            .with_target(false)
            .with_ansi(ansi)
            .try_init()
    };
    json
}

/// The text format's writer: each record is one line, whatever the data in it. Names from the
/// store (GPU models, pod and DRA names, StorageClasses, resources) reach log fields and
/// messages, and a line end or a control character in one would forge a line of its own in a
/// text log (JSON escapes them by itself). `tracing-subscriber` formats a record into one
/// buffer and writes it at once, so every control character but the record's final line end
/// (and ANSI colours' escape, when stderr is a terminal) is written escaped (`\n`, `\u{1b}`).
struct OneLine<W>(W);

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&one_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `record` with every control character escaped but a final line end and, on a terminal,
/// the escape that starts a colour (which the formatter writes, not the data: a record's data
/// cannot tell them apart, so a terminal is trusted with them).
fn one_line(record: &[u8]) -> Vec<u8> {
    let (body, end) = match record.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (record, &b""[..]),
    };
    let terminal = std::io::stderr().is_terminal();
    let mut out = Vec::with_capacity(record.len());
    for &b in body {
        match b {
            0x1b if terminal => out.push(b),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b),
            b if b < 0x20 || b == 0x7f => out.extend_from_slice(format!("\\u{{{b:x}}}").as_bytes()),
            b => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// A record whose data carries line ends and control characters stays one line.
    #[test]
    fn data_cannot_forge_a_log_line() {
        let forged = b"WARN model=\"H100\n2026-12-06T00:00:00Z INFO run complete\rx\x07\"\n";
        let line = one_line(forged);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "WARN model=\"H100\\n2026-12-06T00:00:00Z INFO run complete\\rx\\u{7}\"\n"
        );
        assert_eq!(one_line(b"plain\n"), b"plain\n");
    }
}
