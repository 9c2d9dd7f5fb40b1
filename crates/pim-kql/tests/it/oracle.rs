//! Microsoft's Kusto parser as the test oracle of [`pim_kql::check_query`] (issue 9).
//!
//! The whole corpus (`tests/corpus/hostile.kql`, `tests/corpus/legit.kql`) goes through the
//! checker and, in one Node.js process, through `@kusto/language-service-next` (pinned in
//! `oracle/package.json`, installed by `npm ci` in `.ci/run`), which reports each query's
//! errors and the tables it reads by Kusto's own name resolution. Then:
//! - every legitimate query is accepted, and Kusto finds no error in it before or after the
//!   rewrite;
//! - every hostile `refuse` query is refused; every hostile `cap` query is accepted only with
//!   the final row cap;
//! - every accepted query still parses after the rewrite, reads only allowed tables, and ends,
//!   as Kusto reads it, in the `| take N` cap (not, say, inside a string literal);
//! - the hostile corpus is real: Kusto parses most of it cleanly and finds a table (or database)
//!   outside the allowed list in it;
//! - the checker's list of built-in functions matches the parser's;
//! - differentially, over 30000 random queries built from KQL pieces: every one the checker
//!   accepts and Kusto finds no error in reads only allowed tables, and every one that parses
//!   ends in the cap.
//!
//! Without Node.js or the installed package the test says so and fails when `CI` is set; on a
//! developer machine it is skipped with a loud message.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pim_kql::{BUILTINS, QueryPolicy, check_query};
use serde_json::{Value, json};

const MIN_HOSTILE: usize = 300;
/// Random queries built from KQL pieces, for the differential part of the test.
const SOUP: usize = 30_000;
const MIN_LEGIT: usize = 150;

struct Entry {
    kind: String,
    desc: String,
    kql: String,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a corpus file: a line `#### <header>` starts each query, which runs to the next one.
fn corpus(name: &str, with_kind: bool) -> Vec<Entry> {
    let path = manifest_dir().join("tests/corpus").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut entries: Vec<Entry> = Vec::new();
    for line in text.split('\n') {
        if let Some(header) = line.strip_prefix("#### ") {
            let (kind, desc) = if with_kind {
                let (k, d) = header.split_once(" | ").unwrap();
                (k.to_owned(), d.to_owned())
            } else {
                ("accept".to_owned(), header.to_owned())
            };
            entries.push(Entry {
                kind,
                desc,
                kql: String::new(),
            });
        } else if let Some(entry) = entries.last_mut() {
            if !entry.kql.is_empty() {
                entry.kql.push('\n');
            }
            entry.kql.push_str(line);
        }
    }
    for e in &mut entries {
        e.kql = e.kql.trim_end_matches('\n').to_owned();
        assert!(!e.kql.trim().is_empty(), "{name}: empty query: {}", e.desc);
    }
    entries
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Fails in CI, skips loudly elsewhere: the oracle cannot run.
fn oracle_unavailable<T>(why: &str) -> Option<T> {
    let message = format!(
        "the Kusto oracle cannot run: {why}. Install Node.js (18 or later) and run `npm ci` in crates/pim-kql/oracle (.ci/run does both checks)."
    );
    assert!(!ci(), "{message} CI is set, so this fails.");
    eprintln!("\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n");
    None
}

/// Runs the oracle once over every request; returns its answers by id.
fn run_oracle(dir: &Path, requests: &[Value]) -> Option<std::collections::HashMap<String, Value>> {
    let node = std::env::var("PIM_NODE").unwrap_or_else(|_| "node".to_owned());
    let version = Command::new(&node).arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return oracle_unavailable(&format!(
                "`{node} --version` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Err(e) => {
            return oracle_unavailable(&format!("Node.js (`{node}`) is absent: {e}"));
        }
    }
    if !dir
        .join("node_modules/@kusto/language-service-next/package.json")
        .exists()
    {
        return oracle_unavailable(
            "`@kusto/language-service-next` is not installed (no node_modules)",
        );
    }
    let mut input = String::new();
    for r in requests {
        input.push_str(&r.to_string());
        input.push('\n');
    }
    let mut child = Command::new(&node)
        .arg("oracle.js")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut answers = std::collections::HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        answers.insert(v["id"].as_str().unwrap().to_owned(), v);
    }
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    Some(answers)
}

/// `count` queries of 3 to 14 pieces that name `SigninLogs`, from a fixed xorshift walk.
fn soup(count: usize) -> Vec<String> {
    const PIECES: &[&str] = &[
        "AuditLogs",
        "SigninLogs",
        "AzureActivity",
        "|",
        "(",
        ")",
        "{",
        "}",
        ",",
        ";",
        "=",
        ".",
        "*",
        "~",
        "!",
        "let",
        "x",
        "f",
        "union",
        "join",
        "lookup",
        "on",
        "Id",
        "in",
        "has_any",
        "has_all",
        "where",
        "take",
        "10",
        "by",
        "with",
        "partition",
        "mv-apply",
        "toscalar",
        "materialize",
        "as",
        "invoke",
        "print",
        "datatable",
        "search",
        "view",
        "T:(*)",
        "'s'",
        "h'o'",
        "~~~t~~~",
        "// c\n",
        "\n",
        "kind=inner",
        "project",
        "extend",
        "summarize",
        "count()",
        "==",
        "and",
        "or",
        "not",
        "iff",
        "dynamic",
        "[",
        "]",
        "let f = (T:(*)) { T };",
        "let x = SigninLogs;",
        "f(",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let len = 3 + next() % 12;
        let pieces: Vec<&str> = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        if pieces.contains(&"SigninLogs") {
            out.push(pieces.join(" "));
        }
    }
    out
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` in {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_kusto_parser_agrees_with_the_checker_over_the_whole_corpus() {
    let policy = QueryPolicy::default();
    let allowed: BTreeSet<String> = policy.allowed_tables.iter().cloned().collect();
    let hostile = corpus("hostile.kql", true);
    let legit = corpus("legit.kql", false);
    assert!(hostile.len() >= MIN_HOSTILE, "{} hostile", hostile.len());
    assert!(legit.len() >= MIN_LEGIT, "{} legitimate", legit.len());
    assert!(
        hostile
            .iter()
            .all(|e| e.kind == "refuse" || e.kind == "cap"),
        "unknown kind"
    );

    let mut failures: Vec<String> = Vec::new();
    let entries: Vec<(&str, &Entry)> = legit
        .iter()
        .map(|e| ("legit", e))
        .chain(hostile.iter().map(|e| ("hostile", e)))
        .collect();
    let checked: Vec<_> = entries
        .iter()
        .map(|(_, e)| check_query(&e.kql, &policy))
        .collect();

    // The checker's own verdicts.
    for ((file, e), result) in entries.iter().zip(&checked) {
        match (e.kind.as_str(), result) {
            ("accept" | "cap", Err(r)) => {
                failures.push(format!("{file}: refused `{}`: {r}\n{}", e.desc, e.kql));
            }
            ("refuse", Ok(c)) => {
                failures.push(format!("{file}: accepted `{}`:\n{}", e.desc, c.kql));
            }
            (_, Ok(c)) => {
                let cap = format!("\n| take {}", policy.row_cap);
                let last = c.kql.rfind(&cap).map(|at| &c.kql[at + cap.len()..]);
                let capped = last.is_some_and(|rest| {
                    // Only comments, `;` or a final `render` may follow the cap.
                    let code: String = rest
                        .lines()
                        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let code = code.trim().trim_end_matches(';').trim();
                    code.is_empty() || code.starts_with("| render ")
                });
                if !capped {
                    failures.push(format!("{file}: no final cap in `{}`:\n{}", e.desc, c.kql));
                }
            }
            _ => {}
        }
    }

    // One oracle run: every query as written, every rewrite, and the built-in catalogue.
    let mut requests = vec![json!({"id": "builtins", "builtins": true})];
    // Differential: random soup the checker accepts goes to the parser too.
    let soup_accepted: Vec<String> = soup(SOUP)
        .into_iter()
        .filter_map(|q| check_query(&q, &policy).ok().map(|c| c.kql))
        .collect();
    for (i, kql) in soup_accepted.iter().enumerate() {
        requests.push(json!({"id": format!("s{i}"), "kql": kql}));
    }
    for (i, ((_, e), result)) in entries.iter().zip(&checked).enumerate() {
        requests.push(json!({"id": format!("o{i}"), "kql": e.kql}));
        if let Ok(c) = result {
            requests.push(json!({"id": format!("r{i}"), "kql": c.kql}));
        }
    }
    let Some(answers) = run_oracle(&manifest_dir().join("oracle"), &requests) else {
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
        return;
    };

    let mut confirmed_hostile = 0;
    for (i, ((file, e), result)) in entries.iter().zip(&checked).enumerate() {
        let original = &answers[&format!("o{i}")];
        let outside: Vec<String> = strings(original, "tables")
            .into_iter()
            .filter(|t| !allowed.contains(t))
            .chain(strings(original, "other"))
            .collect();
        if *file == "hostile" && strings(original, "syntax").is_empty() && !outside.is_empty() {
            confirmed_hostile += 1;
        }
        if e.kind == "accept" && !strings(original, "errors").is_empty() {
            failures.push(format!(
                "legit: Kusto finds errors in `{}`: {:?}\n{}",
                e.desc,
                strings(original, "errors"),
                e.kql
            ));
        }
        let Ok(c) = result else { continue };
        let rewritten = &answers[&format!("r{i}")];
        let syntax = strings(rewritten, "syntax");
        let errors = strings(rewritten, "errors");
        let read: Vec<String> = strings(rewritten, "tables");
        let other = strings(rewritten, "other");
        // The cap as Kusto reads it: the last operator, or the one before a final `render`.
        let tail = strings(rewritten, "tail");
        let take = format!("take{}", policy.row_cap);
        let capped = match tail.as_slice() {
            [last, ..] if *last == take => true,
            [last, before, ..] => last.starts_with("render") && *before == take,
            _ => false,
        };
        if !capped {
            failures.push(format!(
                "{file}: by Kusto, the rewrite of `{}` does not end in `| take {}`: {tail:?}\n{}",
                e.desc, policy.row_cap, c.kql
            ));
        }
        if !syntax.is_empty() || (e.kind == "accept" && !errors.is_empty()) {
            failures.push(format!(
                "{file}: the rewrite of `{}` does not parse cleanly: {syntax:?} {errors:?}\n{}",
                e.desc, c.kql
            ));
        }
        if read.iter().any(|t| !allowed.contains(t)) || !other.is_empty() {
            failures.push(format!(
                "{file}: accepted `{}`, which by Kusto reads {read:?} {other:?}\n{}",
                e.desc, c.kql
            ));
        }
        let mut listed: Vec<String> = c.tables.clone();
        listed.sort();
        let mut found: Vec<String> = read.clone();
        found.sort();
        if listed != found {
            failures.push(format!(
                "{file}: the checker reports {listed:?} for `{}`, Kusto {found:?}",
                e.desc
            ));
        }
    }
    let refused = hostile.iter().filter(|e| e.kind == "refuse").count();
    eprintln!(
        "corpus: {} legitimate, {} hostile ({refused} to refuse, {} capped); Kusto parses {confirmed_hostile} hostile queries cleanly and finds data outside the allowed tables in them",
        legit.len(),
        hostile.len(),
        hostile.len() - refused
    );
    if confirmed_hostile < MIN_HOSTILE {
        failures.push(format!(
            "only {confirmed_hostile} hostile queries are valid Kusto reading other data; the corpus should hold at least {MIN_HOSTILE}"
        ));
    }

    // The soup: an accepted query Kusto finds no error in reads only allowed tables; one that
    // parses ends in the cap. (With a semantic error, such as a table name used as a scalar in
    // `10 * SigninLogs`, Kusto refuses to run the query at all.)
    for (i, kql) in soup_accepted.iter().enumerate() {
        let answer = &answers[&format!("s{i}")];
        let outside: Vec<String> = strings(answer, "tables")
            .into_iter()
            .filter(|t| !allowed.contains(t))
            .chain(strings(answer, "other"))
            .collect();
        if strings(answer, "errors").is_empty() && !outside.is_empty() {
            failures.push(format!(
                "soup: accepted, and by Kusto reads {outside:?}:\n{kql}"
            ));
        }
        let tail = strings(answer, "tail");
        let take = format!("take{}", policy.row_cap);
        let capped = match tail.as_slice() {
            [last, ..] if *last == take => true,
            [last, before, ..] => last.starts_with("render") && *before == take,
            _ => false,
        };
        if strings(answer, "syntax").is_empty() && !capped {
            failures.push(format!("soup: by Kusto, no final cap: {tail:?}\n{kql}"));
        }
    }
    eprintln!(
        "soup: {} of {SOUP} random queries naming SigninLogs accepted, each checked by Kusto",
        soup_accepted.len()
    );

    // The built-in catalogue: the checker's list is the parser's, minus the data sources.
    let kusto: BTreeSet<String> = strings(&answers["builtins"], "builtins")
        .into_iter()
        .collect();
    let ours: BTreeSet<String> = BUILTINS.iter().map(|s| (*s).to_owned()).collect();
    let data_sources = [
        "cluster",
        "database",
        "table",
        "external_table",
        "materialized_view",
        "entity_group",
        "stored_query_result",
        "graph",
    ];
    let expected: BTreeSet<String> = kusto
        .iter()
        .filter(|n| !n.starts_with("__") && !data_sources.contains(&n.as_str()))
        .cloned()
        .collect();
    if ours != expected {
        failures.push(format!(
            "BUILTINS differs from the parser's catalogue: missing {:?}, extra {:?}",
            expected.difference(&ours).collect::<Vec<_>>(),
            ours.difference(&expected).collect::<Vec<_>>()
        ));
    }

    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The scan queries `pim-kql` builds (issue 12: server-side object-id extraction, half-open
/// split ranges) are valid KQL as Kusto's own parser reads them, against the same AuditLogs and
/// AzureActivity schemas, whole and split.
#[test]
fn the_scan_queries_have_no_kusto_errors_whole_or_split() {
    use pim_domain::TimeRange;
    use pim_kql::{Identity, QueryRange};
    use time::macros::datetime;

    let whole = QueryRange::from(TimeRange::new(
        datetime!(2026-11-20 09:13:58.1234567 UTC),
        datetime!(2026-11-20 13:13:58 UTC),
    ));
    let (first, last) = whole.split().unwrap();
    let who = [
        Identity {
            upn: Some("o'brien\"x@contoso.com".into()),
            object_id: Some("3f1e0000-0000-4000-8000-000000000001".into()),
        },
        Identity {
            upn: Some("jane@contoso.com".into()),
            object_id: None,
        },
    ];
    let mut queries: Vec<String> = Vec::new();
    for range in [whole, first, last] {
        queries.push(pim_kql::pim_events_query(range));
        queries.push(pim_kql::activity_pim_events_query(range));
        queries.extend(pim_kql::azure_activity_queries(&who, range, false, 10).unwrap());
        queries.extend(pim_kql::directory_activity_queries(&who, range, 10).unwrap());
        // The behaviour-baseline summaries (issue 14), over the same ranges.
        queries.extend(pim_kql::azure_baseline_queries(&who, range, 10).unwrap());
        queries.extend(pim_kql::directory_baseline_queries(&who, range, 10).unwrap());
        queries.extend(pim_kql::activation_count_queries(&who, range, 10).unwrap());
    }
    let requests: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, kql)| json!({"id": format!("q{i}"), "kql": kql}))
        .collect();
    let Some(answers) = run_oracle(&manifest_dir().join("oracle"), &requests) else {
        return;
    };
    for (i, kql) in queries.iter().enumerate() {
        let answer = &answers[&format!("q{i}")];
        let errors = strings(answer, "errors");
        assert!(errors.is_empty(), "Kusto finds errors {errors:?} in\n{kql}");
        let tables = strings(answer, "tables");
        assert_eq!(tables.len(), 1, "{tables:?} in\n{kql}");
    }
}
