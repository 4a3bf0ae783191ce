//! The documentation kept true: the configuration reference is generated from the CLI's own
//! definitions (clap), every link between README and the book resolves (files and headings),
//! every page of the book is reachable from README, and README stays a ten-minute read.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::CommandFactory;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const BEGIN: &str =
    "<!-- BEGIN generated from the CLI by tests/docs.rs: UPDATE_DOCS=1 cargo test --test docs -->";
const END: &str = "<!-- END generated -->";

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// One table of a command's arguments (those in `skip` left out: the run's flags that a
/// subcommand takes too).
fn table(cmd: &clap::Command, skip: &BTreeSet<String>) -> String {
    let mut out = String::from(
        "| flag | environment variable | default | values | meaning |\n|---|---|---|---|---|\n",
    );
    for arg in cmd.get_arguments() {
        let id = arg.get_id().to_string();
        if arg.is_hide_set() || skip.contains(&id) || id == "help" || id == "version" {
            continue;
        }
        let flag = match (arg.get_long(), arg.get_value_names()) {
            (Some(long), Some(names)) if arg.get_action().takes_values() => format!(
                "`--{long} <{}>`",
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join("> <")
            ),
            (Some(long), _) => format!("`--{long}`"),
            (None, _) => format!("`<{}>`", id.to_uppercase()),
        };
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ");
        let values = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect::<Vec<_>>()
            .join(", ");
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "| {} | {env} | {} | {} | {} |\n",
            cell(&flag),
            cell(&default),
            cell(&values),
            cell(&help)
        ));
    }
    out
}

/// The reference: the run's flags, then each command's own.
fn reference() -> String {
    let cli = consumption_metrics::cli::Cli::command();
    let run_ids: BTreeSet<String> = consumption_metrics::cli::Args::command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let mut out = format!(
        "## A run (the CronJob, a backfill, a dry-run)\n\n\
         `consumption-metrics [OPTIONS]`; `check`, `audit` and `checkpoint` take these too.\n\n{}",
        table(&consumption_metrics::cli::Args::command(), &BTreeSet::new())
    );
    let mut sub = |path: &str, cmd: &clap::Command| {
        let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "\n## `consumption-metrics {path}`\n\n{}\n\n",
            about.trim()
        ));
        let own = table(cmd, &run_ids);
        if own.lines().count() > 2 {
            out.push_str(&own);
        } else {
            out.push_str("No flags of its own.\n");
        }
    };
    for cmd in cli.get_subcommands() {
        let name = cmd.get_name().to_string();
        if name == "help" {
            continue;
        }
        if cmd.get_subcommands().next().is_some() {
            for inner in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
                sub(&format!("{name} {}", inner.get_name()), inner);
            }
        } else {
            sub(&name, cmd);
        }
    }
    out
}

#[test]
fn the_configuration_reference_is_generated_from_the_cli() {
    let path = root().join("docs/configuration.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = page
        .split_once(BEGIN)
        .expect("docs/configuration.md has the generated block's BEGIN marker");
    let (current, tail) = rest.split_once(END).expect("and its END marker");
    let wanted = format!("\n{}", reference());
    if current != wanted {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{head}{BEGIN}{wanted}{END}{tail}")).unwrap();
            return;
        }
        panic!(
            "docs/configuration.md's reference is not what the CLI defines: a flag, variable, \
             default or help changed. Regenerate it with `UPDATE_DOCS=1 cargo test --test docs` \
             and review the diff"
        );
    }
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces as
/// dashes; a repeated heading gets `-1`, `-2`, ….
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#').trim();
        let slug: String = text
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while !seen.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
    }
    seen
}

/// The `(target)` of every inline link outside code.
fn links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code spans hold no links.
        let text: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(j) = after.find(')') else { break };
            out.push(after[..j].to_string());
            rest = &after[j..];
        }
    }
    out
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

#[test]
fn every_link_resolves_to_a_file_and_heading() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for target in links(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved: PathBuf = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            let name = page.strip_prefix(root()).unwrap().display().to_string();
            if !resolved.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                let in_md = resolved.extension().is_some_and(|e| e == "md");
                let found =
                    in_md && anchors(&std::fs::read_to_string(&resolved).unwrap()).contains(anchor);
                if !found {
                    broken.push(format!("{name}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Every page of the book is reached from README's table of questions, and README stays short:
/// what it bills and for whom, the two commands, deploying, the first day, where to go next.
#[test]
fn readme_is_short_and_leads_to_every_page() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines; the book (docs/) takes the rest"
    );
    let linked: BTreeSet<String> = links(&readme)
        .into_iter()
        .filter_map(|t| {
            t.strip_prefix("docs/")
                .map(|p| p.split('#').next().unwrap().to_string())
        })
        .collect();
    for page in pages().iter().skip(1) {
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            linked.contains(&name),
            "docs/{name} is not linked from README.md"
        );
    }
    // The two quick-start commands, as CI runs the second.
    for command in ["bash scripts/demo.sh", "bash scripts/test.sh"] {
        assert!(readme.contains(command), "README.md lost `{command}`");
    }
}

/// The alerts' runbook links land on the runbook's headings.
#[test]
fn every_alert_links_to_its_runbook_entry() {
    let rules =
        std::fs::read_to_string(root().join("kustomize/components/alerts/prometheusrule.yaml"))
            .unwrap();
    let operating = anchors(&std::fs::read_to_string(root().join("docs/operating.md")).unwrap());
    let mut n = 0;
    for line in rules.lines().filter(|l| l.contains("runbook_url:")) {
        let url = line.split('"').nth(1).unwrap_or_default();
        let anchor = url
            .strip_prefix(
                "https://github.com/consumption-metrics/consumption-metrics/blob/main/docs/operating.md#",
            )
            .unwrap_or_else(|| panic!("{url} is not a docs/operating.md anchor"));
        assert!(operating.contains(anchor), "{url}: no such heading");
        n += 1;
    }
    assert!(n >= 6, "only {n} runbook links");
}
