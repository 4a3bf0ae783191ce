//! `--prometheus-selector`: label matchers added to every selector of every query the job
//! sends, so that a store holding many clusters (Thanos, Mimir, VictoriaMetrics with a
//! `cluster` external label) answers for this cluster alone.
//!
//! Why one place: the Prometheus client applies the scope to every expression it sends
//! ([`Scope::apply`]), so no query (the window probe, the sample reads, a query added next
//! year) can forget it. It works on the PromQL text we write, whose shape we control: every
//! `{` outside a string literal opens a selector's matchers, and a metric name followed
//! directly by `[` is a selector without braces. A unit test holds that over every query.

use std::fmt;

/// One label matcher, as PromQL writes it: `name op "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matcher {
    name: String,
    op: &'static str,
    /// The value as written, quotes and escapes included.
    quoted: String,
}

/// The matchers added to every selector; empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    matchers: Vec<Matcher>,
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A metric name may also hold `:` (recording rules).
fn is_metric_start(c: char) -> bool {
    is_label_start(c) || c == ':'
}

fn is_metric_char(c: char) -> bool {
    is_label_char(c) || c == ':'
}

/// The text of a PromQL string literal (`"…"`, `'…'` or `` `…` ``, quotes included), with
/// the escapes PromQL takes from Go (`\a \b \f \n \r \t \v \\`, the enclosing quote,
/// `\xHH`, `\ooo`, `\uHHHH`, `\UHHHHHHHH`; none in backquotes), as Prometheus's lexer
/// reads it (`util/strutil.Unquote`). Any other escape, such as `\d`, is refused there,
/// so it is refused here too (exit 2), not by the engine mid-run.
fn unquote(quoted: &str) -> Result<String, String> {
    let quote = quoted.chars().next().unwrap_or('"');
    let inner = &quoted[quote.len_utf8()..quoted.len() - quote.len_utf8()];
    if quote == '`' {
        return Ok(inner.to_string());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("a trailing backslash")?;
        let hex = |chars: &mut std::str::Chars, n: usize| -> Result<u32, String> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n || !digits.chars().all(|d| d.is_ascii_hexdigit()) {
                return Err(format!("\\{e} needs {n} hexadecimal digits"));
            }
            u32::from_str_radix(&digits, 16).map_err(|x| x.to_string())
        };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            q if q == quote => out.push(q),
            'x' => out.push(char::from(
                u8::try_from(hex(&mut chars, 2)?).map_err(|x| x.to_string())?,
            )),
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let code = hex(&mut chars, n)?;
                out.push(char::from_u32(code).ok_or(format!("\\{e}{code:x} is not a character"))?);
            }
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let digits = format!("{e}{rest}");
                let code = u32::from_str_radix(&digits, 8)
                    .ok()
                    .filter(|c| digits.len() == 3 && *c <= 255)
                    .ok_or(format!("\\{digits} is not a three-digit octal byte"))?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            other => {
                return Err(format!(
                    "\\{other} is not an escape PromQL strings take (write \\\\{other} for a \
                     backslash in a regular expression)"
                ));
            }
        }
    }
    Ok(out)
}

/// Matchers that belong to some metrics only: each source's provenance
/// ([`crate::provenance::Provenance`] implements it; this module needs no more of it).
pub trait MetricMatchers {
    /// The matchers of `metric`'s source, if it has any.
    fn for_metric(&self, metric: &str) -> Option<&Scope>;
    /// Whether no metric has matchers of its own.
    fn is_any(&self) -> bool;
}

/// No metric has matchers of its own.
pub struct NoMetricMatchers;

impl MetricMatchers for NoMetricMatchers {
    fn for_metric(&self, _: &str) -> Option<&Scope> {
        None
    }
    fn is_any(&self) -> bool {
        true
    }
}

impl Scope {
    /// Parse `--prometheus-selector`: comma-separated matchers in PromQL syntax, e.g.
    /// `cluster="east"` or `cluster="east",prometheus_replica=~".+"`, optionally in braces.
    /// `Err` says what is wrong, without the value (it may be long).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut s = raw.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            s = inner.trim();
        }
        let mut matchers = Vec::new();
        let mut rest = s;
        while !rest.trim().is_empty() {
            let r = rest.trim_start();
            let name_len = r
                .char_indices()
                .find(|(i, c)| {
                    !(if *i == 0 {
                        is_label_start(*c)
                    } else {
                        is_label_char(*c)
                    })
                })
                .map_or(r.len(), |(i, _)| i);
            if name_len == 0 {
                return Err(format!(
                    "expected a label name at {:?}",
                    r.chars().take(20).collect::<String>()
                ));
            }
            let name = &r[..name_len];
            if name == "__name__" {
                return Err(
                    "__name__ cannot be scoped: every query names its own metrics".to_string(),
                );
            }
            let r = r[name_len..].trim_start();
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| r.starts_with(op))
                .ok_or_else(|| format!("expected =, !=, =~ or !~ after {name}"))?;
            let r = r[op.len()..].trim_start();
            let quote = r
                .chars()
                .next()
                .filter(|c| matches!(c, '"' | '\'' | '`'))
                .ok_or_else(|| {
                    format!("the value of {name} must be quoted, e.g. {name}=\"east\"")
                })?;
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices().skip(1) {
                if escaped {
                    escaped = false;
                } else if c == '\\' && quote != '`' {
                    escaped = true;
                } else if c == quote {
                    end = Some(i);
                    break;
                } else if c == '\n' {
                    break;
                }
            }
            let end = end.ok_or_else(|| format!("the value of {name} has no closing {quote}"))?;
            let quoted = &r[..=end];
            // As Prometheus reads it: the string literal unescaped first (Go's rules), then,
            // for a regular expression, that text compiled.
            let value = unquote(quoted).map_err(|e| format!("the value of {name}: {e}"))?;
            if op.ends_with('~') {
                // Prometheus anchors the expression and uses RE2; the regex crate's syntax is
                // the same for what matchers use, and refuses the same mistakes.
                regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    format!(
                        "the regular expression of {name} does not compile: {}",
                        e.to_string().lines().last().unwrap_or_default()
                    )
                })?;
            }
            matchers.push(Matcher {
                name: name.to_string(),
                op,
                quoted: quoted.to_string(),
            });
            rest = r[end + 1..].trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
                if rest.trim().is_empty() {
                    return Err("a comma with no matcher after it".into());
                }
            } else if !rest.is_empty() {
                return Err(format!(
                    "expected a comma between matchers at {:?}",
                    rest.chars().take(20).collect::<String>()
                ));
            }
        }
        Ok(Scope { matchers })
    }

    pub fn is_empty(&self) -> bool {
        self.matchers.is_empty()
    }

    /// `expr` with the scope's matchers in every selector (module documentation).
    pub fn apply(&self, expr: &str) -> String {
        self.apply_with(expr, &NoMetricMatchers)
    }

    /// `expr` with the scope's matchers in every selector, and in each selector of a source's
    /// metric that source's matchers too ([`crate::provenance`]). A selector names its metric
    /// before its braces (`kube_pod_info{…}`, `kube_pod_info[…]`) or, in braces alone, as
    /// `__name__="…"`/`__name__=~"…"` whose literal start names one source (`"kube_.+"`).
    pub fn apply_with(&self, expr: &str, provenance: &impl MetricMatchers) -> String {
        if self.is_empty() && provenance.is_any() {
            return expr.to_string();
        }
        let mut out = String::with_capacity(expr.len() + 64);
        let mut chars = expr.char_indices().peekable();
        // The character before the current one: a letter after a digit is a unit (`1ms`), not
        // a metric name.
        let mut previous = ' ';
        // Open braces: every matcher added, and a comma when the selector has its own.
        let open = |out: &mut String, rest: &str, metric: Option<&str>| {
            out.push('{');
            let mut all = self.to_string();
            if let Some(extra) = metric.and_then(|m| provenance.for_metric(m)) {
                if !all.is_empty() {
                    all.push_str(", ");
                }
                all.push_str(&extra.to_string());
            }
            out.push_str(&all);
            if !all.is_empty() && !rest.trim_start().starts_with('}') {
                out.push_str(", ");
            }
        };
        while let Some((i, c)) = chars.next() {
            match c {
                '"' | '\'' | '`' => {
                    out.push(c);
                    let mut escaped = false;
                    for (_, s) in chars.by_ref() {
                        out.push(s);
                        if escaped {
                            escaped = false;
                        } else if s == '\\' && c != '`' {
                            escaped = true;
                        } else if s == c {
                            break;
                        }
                    }
                    previous = c;
                }
                '{' => {
                    let rest = &expr[i + 1..];
                    let inside = &rest[..rest.find('}').unwrap_or(rest.len())];
                    open(&mut out, rest, named_metric(inside));
                    previous = c;
                }
                c if is_metric_start(c) && !is_metric_char(previous) && previous != '.' => {
                    let mut end = i + c.len_utf8();
                    while let Some((j, n)) = chars.peek().copied() {
                        if !is_metric_char(n) {
                            break;
                        }
                        end = j + n.len_utf8();
                        chars.next();
                    }
                    let metric = &expr[i..end];
                    out.push_str(metric);
                    if expr[end..].starts_with('{') {
                        chars.next();
                        open(&mut out, &expr[end + 1..], Some(metric));
                        previous = '{';
                        continue;
                    }
                    if expr[end..].starts_with('[') {
                        let before = out.len();
                        open(&mut out, "}", Some(metric));
                        if out.len() == before + 1 {
                            out.pop();
                        } else {
                            out.push('}');
                        }
                    }
                    previous = expr[..end].chars().last().unwrap_or(' ');
                }
                c => {
                    out.push(c);
                    previous = c;
                }
            }
        }
        out
    }
}

/// The metric a selector in braces alone names by `__name__`: the literal start of its value
/// (`__name__=~"kube_.+"` names kube-state-metrics' `kube_`).
fn named_metric(inside: &str) -> Option<&str> {
    let at = inside.find("__name__")?;
    let rest = inside[at + "__name__".len()..].trim_start();
    let rest = rest
        .strip_prefix("=~")
        .or_else(|| rest.strip_prefix('='))?
        .trim_start();
    let value = rest.strip_prefix('"')?;
    let end = value
        .find(|c: char| !is_metric_char(c))
        .unwrap_or(value.len());
    Some(&value[..end]).filter(|m| !m.is_empty())
}

impl fmt::Display for Scope {
    /// The matchers as PromQL writes them inside braces: `cluster="east", replica=~".+"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}{}", m.name, m.op, m.quoted)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::Provenance;

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    #[test]
    fn matchers_parse_as_promql_writes_them() {
        assert_eq!(scope(r#"cluster="east""#).to_string(), r#"cluster="east""#);
        assert_eq!(
            scope(r#" {cluster = "east" , prometheus_replica=~".+"} "#).to_string(),
            r#"cluster="east", prometheus_replica=~".+""#
        );
        assert_eq!(
            scope(r#"cluster!~'a|b',x!="\"q\"""#).to_string(),
            r#"cluster!~'a|b', x!="\"q\"""#
        );
        assert!(scope("").is_empty());
    }

    #[test]
    fn malformed_matchers_are_refused() {
        for (bad, says) in [
            ("cluster", "expected =, !=, =~ or !~"),
            ("cluster=east", "must be quoted"),
            (r#"cluster="east"#, "no closing"),
            (r#"cluster="east" region="x""#, "expected a comma"),
            (r#"cluster="east","#, "a comma with no matcher"),
            (r#"1cluster="east""#, "expected a label name"),
            (r#"cluster=~"(east""#, "does not compile"),
            (r#"__name__="up""#, "__name__ cannot be scoped"),
            (r#"cluster=="east""#, "must be quoted"),
            // `\d` is not an escape of PromQL strings: Prometheus would refuse it mid-run.
            (r#"cluster=~"\d+""#, "\\d is not an escape"),
            (r#"cluster="\x4""#, "hexadecimal"),
        ] {
            let e = Scope::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// Validated as Prometheus reads it: the string unescaped, then the regular expression.
    #[test]
    fn values_are_unescaped_before_the_regular_expression_is_compiled() {
        for good in [
            r#"cluster=~"east|\\(""#,
            r#"cluster=~"\\d+""#,
            r#"cluster=~`\d+`"#,
            r#"cluster='it\'s'"#,
            r#"cluster="tab\there\u00e9""#,
        ] {
            Scope::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        assert_eq!(unquote(r#""a\\(b""#).unwrap(), r"a\(b");
        assert_eq!(unquote(r#""\101\x42\u0043""#).unwrap(), "ABC");
        assert!(unquote(r#""it\'s""#).is_err(), "\\' only in single quotes");
    }

    #[test]
    fn every_selector_gets_the_matchers_and_nothing_else_does() {
        let s = scope(r#"cluster="east""#);
        assert_eq!(
            s.apply(r#"sum by (namespace) (count_over_time(kube_pod_status_phase{phase="Running"}[3599999ms] offset 1ms))"#),
            r#"sum by (namespace) (count_over_time(kube_pod_status_phase{cluster="east", phase="Running"}[3599999ms] offset 1ms))"#
        );
        assert_eq!(
            s.apply("max_over_time(kube_persistentvolumeclaim_info[1h] offset 1ms)"),
            r#"max_over_time(kube_persistentvolumeclaim_info{cluster="east"}[1h] offset 1ms)"#
        );
        assert_eq!(
            s.apply(r#"count(last_over_time({__name__=~"kube_.+", exported_namespace!=""}[1h]))"#),
            r#"count(last_over_time({cluster="east", __name__=~"kube_.+", exported_namespace!=""}[1h]))"#
        );
        // Strings, functions, label lists, subqueries and durations are left alone.
        for untouched in [
            "count_over_time(vector(1)[1h:1m])",
            r#"label_replace(x{} , "samples", "series{[", "", "")"#,
            "a * on (namespace, pod) group_left (storageclass) b",
            "scalar(3600 / clamp_min(y, 1))",
        ] {
            let scoped = s.apply(untouched);
            assert_eq!(
                scoped.replace(r#"cluster="east""#, ""),
                untouched,
                "{untouched} -> {scoped}"
            );
        }
        assert_eq!(s.apply("x{}"), r#"x{cluster="east"}"#);
        assert_eq!(Scope::default().apply("x{a=\"b\"}"), "x{a=\"b\"}");
    }

    /// Each source's metrics get its provenance matchers beside the scope's, wherever the
    /// selector names them (before braces, before a range, or by `__name__` in braces);
    /// other metrics, functions and strings get the scope's alone.
    #[test]
    fn provenance_matchers_go_to_their_sources_metrics_only() {
        let p = Provenance::default();
        let s = scope(r#"cluster="east""#);
        assert_eq!(
            s.apply_with(r#"sum(kube_pod_status_phase{phase="Running"}[1h])"#, &p),
            r#"sum(kube_pod_status_phase{cluster="east", job="kube-state-metrics", phase="Running"}[1h])"#
        );
        assert_eq!(
            Scope::default().apply_with("rate(container_cpu_usage_seconds_total[5m])", &p),
            r#"rate(container_cpu_usage_seconds_total{job="kubelet", metrics_path="/metrics/cadvisor"}[5m])"#
        );
        assert_eq!(
            Scope::default().apply_with("DCGM_FI_DEV_FB_USED{}", &p),
            r#"DCGM_FI_DEV_FB_USED{job=~"nvidia-dcgm-exporter|dcgm-exporter"}"#
        );
        assert_eq!(
            Scope::default().apply_with(
                r#"count({__name__=~"kube_.+", exported_namespace!=""})"#,
                &p
            ),
            r#"count({job="kube-state-metrics", __name__=~"kube_.+", exported_namespace!=""})"#
        );
        // `up` and a subquery of a constant: the scope alone; kube-scheduler's metric: its
        // own source's matchers, not kube-state-metrics' (whose prefix it shares).
        for (expr, want) in [
            ("up{job=\"x\"}", r#"up{cluster="east", job="x"}"#),
            (
                "kube_pod_resource_request[1h]",
                r#"kube_pod_resource_request{cluster="east", job=~"kube-scheduler|scheduler"}[1h]"#,
            ),
            (
                "count_over_time(vector(1)[1h:1m])",
                "count_over_time(vector(1)[1h:1m])",
            ),
        ] {
            assert_eq!(s.apply_with(expr, &p), want, "{expr}");
        }
        assert_eq!(
            Scope::default().apply_with("kube_pod_info[1h]", &Provenance::any()),
            "kube_pod_info[1h]"
        );
    }
}
