//! The README runs as written: every `sh` block marked `<!-- readme-test -->` runs, in order,
//! in one bash against a live server, each command succeeds, and where the README shows a
//! command's output (comment lines holding JSON right after it) the output matches.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::Value;
use tests::TestApp;

const MARKER: &str = "<!-- readme-test -->";
/// What the README's examples stand for: `make run`'s address.
const README_ADDRS: [&str; 2] = ["127.0.0.1:8000", "localhost:8000"];
/// Stands for anything in a shown output.
const ANY: char = '…';

fn repo_file(name: &str) -> anyhow::Result<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Some commands of a block, and the output the README shows under them (one JSON text a line),
/// if it does.
#[derive(Debug)]
struct Step {
    /// Line of the README where the step's first command is.
    line: usize,
    commands: Vec<String>,
    shown: Vec<String>,
}

/// The steps of every marked block, in order.
fn steps(readme: &str) -> anyhow::Result<Vec<Step>> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != MARKER {
            i += 1;
            continue;
        }
        let fence = lines.get(i + 1).map(|l| l.trim()).unwrap_or_default();
        anyhow::ensure!(
            fence == "```sh",
            "README.md:{}: {MARKER} must stand right above a ```sh block",
            i + 1
        );
        i += 2;
        let mut step = Step {
            line: i + 1,
            commands: Vec::new(),
            shown: Vec::new(),
        };
        loop {
            let Some(line) = lines.get(i) else {
                anyhow::bail!("README.md: a marked block does not end");
            };
            if line.trim() == "```" {
                break;
            }
            let output = line
                .trim()
                .strip_prefix("# ")
                .filter(|rest| rest.starts_with('{') || rest.starts_with('['));
            match output {
                Some(output) => step.shown.push(output.to_owned()),
                None => {
                    if !step.shown.is_empty() {
                        steps.push(step);
                        step = Step {
                            line: i + 1,
                            commands: Vec::new(),
                            shown: Vec::new(),
                        };
                    }
                    step.commands.push((*line).to_owned());
                }
            }
            i += 1;
        }
        if !step.commands.is_empty() || !step.shown.is_empty() {
            steps.push(step);
        }
        i += 1;
    }
    Ok(steps)
}

/// Whether `text` matches `pattern`, where each [`ANY`] stands for any text.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split(ANY);
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether `actual` is what `shown` shows: the same JSON, key order aside, a string holding
/// [`ANY`] standing for any value (`"…"`) or for strings of its shape (`"rt_…"`).
fn same_json(shown: &Value, actual: &Value) -> bool {
    match (shown, actual) {
        (Value::String(s), _) if s.as_str() == ANY.to_string() => true,
        (Value::String(s), Value::String(a)) if s.contains(ANY) => glob(s, a),
        (Value::Object(s), Value::Object(a)) => {
            s.len() == a.len()
                && s.iter()
                    .all(|(key, value)| a.get(key).is_some_and(|a| same_json(value, a)))
        }
        (Value::Array(s), Value::Array(a)) => {
            s.len() == a.len() && s.iter().zip(a).all(|(s, a)| same_json(s, a))
        }
        _ => shown == actual,
    }
}

fn output_matches(shown: &[String], output: &str) -> bool {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.len() == shown.len()
        && shown.iter().zip(&lines).all(|(shown, line)| {
            match (
                serde_json::from_str::<Value>(shown),
                serde_json::from_str::<Value>(line),
            ) {
                (Ok(shown), Ok(actual)) => same_json(&shown, &actual),
                _ => glob(shown, line.trim()),
            }
        })
}

/// Ends the output of step `n` on stdout.
fn separator(n: usize) -> String {
    format!("\n\u{1e}step {n}\u{1e}\n")
}

#[test]
fn the_matching_rules_of_shown_output() {
    assert!(glob("rt_…", "rt_abc"));
    assert!(!glob("rt_…", "xx_abc"));
    assert!(glob("a…c…e", "abcde") && !glob("a…c…e", "abcdf") && glob("…", ""));
    let shown = serde_json::json!({"data": {"a": "…", "b": [1, {"c": "rt_…"}]}});
    let actual = serde_json::json!({"data": {"b": [1, {"c": "rt_9"}], "a": {"x": 1}}});
    assert!(same_json(&shown, &actual));
    let extra = serde_json::json!({"data": {"b": [1, {"c": "rt_9"}], "a": 1, "errors": []}});
    assert!(!same_json(&shown, &extra));
    assert!(!same_json(
        &serde_json::json!({"x": true}),
        &serde_json::json!({"x": false})
    ));
    let block = "<!-- readme-test -->\n```sh\nA=1\n# {\"x\":1}\n# {\"y\":2}\necho b\n```\n";
    let parsed = steps(block).unwrap_or_default();
    assert_eq!(parsed.len(), 2, "{parsed:?}");
    assert_eq!(parsed[0].commands, ["A=1"]);
    assert_eq!(parsed[0].shown.len(), 2);
    assert_eq!((parsed[1].line, parsed[1].commands.len()), (6, 1));
    assert!(parsed[1].shown.is_empty());
}

#[tokio::test]
async fn the_readme_shell_examples_run_as_written() -> anyhow::Result<()> {
    let readme = repo_file("README.md")?;
    let steps = steps(&readme)?;
    anyhow::ensure!(steps.len() >= 10, "only {} steps found", steps.len());
    // As `make run` serves: private mode's cookies are not `Secure`, so curl sends them over
    // plain HTTP.
    let app = TestApp::spawn_with(|config| config.cookie_secure = Some(false)).await?;
    let addr = app.addr.to_string();
    let mut script = String::from("set -euo pipefail\n");
    for (n, step) in steps.iter().enumerate() {
        for command in &step.commands {
            let mut command = command.clone();
            for readme_addr in README_ADDRS {
                command = command.replace(readme_addr, &addr);
            }
            script.push_str(&command);
            script.push('\n');
        }
        script.push_str(&format!("printf '{}'\n", separator(n).replace('\n', "\\n")));
    }
    let dir = std::env::temp_dir().join(format!("e2e-readme-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("readme.sh"), &script)?;
    let mut child = tokio::process::Command::new("bash")
        .arg("readme.sh")
        .current_dir(&dir)
        // Kept open while the script runs: wscat ends when its standard input does.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child.stdin.take();
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output()).await;
    drop(stdin);
    let _ = std::fs::remove_dir_all(&dir);
    let output = output.map_err(|_| anyhow::anyhow!("the README's examples hung"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The output of step n precedes its separator.
    let mut rest: &str = &stdout;
    for (n, step) in steps.iter().enumerate() {
        let Some((own, after)) = rest.split_once(&separator(n)) else {
            anyhow::bail!(
                "README.md:{}: this step failed ({}):\n{}\n--- its output:\n{rest}\n--- stderr:\n{stderr}",
                step.line,
                output.status,
                step.commands.join("\n"),
            );
        };
        if !step.shown.is_empty() {
            anyhow::ensure!(
                output_matches(&step.shown, own),
                "README.md:{}: the output differs from the one shown\n--- commands:\n{}\n--- \
                 shown:\n{}\n--- got:\n{}",
                step.line,
                step.commands.join("\n"),
                step.shown.join("\n"),
                own.trim()
            );
        }
        rest = after;
    }
    anyhow::ensure!(output.status.success(), "{}: {stderr}", output.status);
    Ok(())
}

/// The operations of the README's first examples, without their keyword and name, white space
/// removed.
fn first_operations(readme: &str) -> Vec<String> {
    let section = readme
        .split("## A first query")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_default();
    section
        .split("-d '")
        .skip(1)
        .filter_map(|piece| piece.split('\'').next())
        .filter_map(|body| serde_json::from_str::<Value>(body).ok())
        .filter_map(|body| body["query"].as_str().map(squeeze))
        .map(|query| match query.find('{') {
            Some(at) => query[at..].to_owned(),
            None => query,
        })
        .collect()
}

fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn graphiql_opens_with_the_readme_first_queries() -> anyhow::Result<()> {
    let readme = repo_file("README.md")?;
    let document = repo_file("server/assets/graphiql/default.graphql")?;
    let document = squeeze(
        &document
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let operations = first_operations(&readme);
    assert_eq!(operations.len(), 3, "{operations:?}");
    for operation in operations {
        assert!(
            document.contains(&operation),
            "GraphiQL's default document lacks {operation}"
        );
    }
    Ok(())
}
