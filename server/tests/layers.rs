//! The import rules of the layers, checked on the source: GraphQL modules hold types and thin
//! resolvers and reach the database only through `services` (no `entity`, no sea-orm); no
//! resolver begins or commits a transaction itself (`RequestScope::read` / `write` lend one);
//! the caller module is a leaf; and the modules of the server form a stack ([`FLOORS`]) in
//! which no import runs back up, nothing under `auth/` reaching the server's state.

// A test: a source file that cannot be read fails it.
#![allow(clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn src(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(relative)
}

/// `(file, line number, line)` of every line of `files` containing one of `needles`, comments
/// left out.
fn offending(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if needles.iter().any(|needle| code.contains(needle)) {
                found.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn graphql_modules_use_neither_entity_nor_sea_orm() {
    let files = sources(&src("graphql"));
    assert!(files.len() > 10, "the graphql sources were not found");
    let found = offending(&files, &["sea_orm", "entity::", "use entity"]);
    assert!(
        found.is_empty(),
        "graphql/ reaches the database around the services:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_resolver_begins_or_commits_a_transaction() {
    let files = sources(&src("graphql"));
    let found = offending(
        &files,
        &[".commit()", "RequestTx::begin", "begin_write", "read_guard"],
    );
    assert!(
        found.is_empty(),
        "a resolver handles its transaction itself:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_caller_module_is_a_leaf() {
    let found = offending(&[src("caller.rs")], &["crate::"]);
    assert!(
        found.is_empty(),
        "caller.rs imports the server:\n{}",
        found.join("\n")
    );
}

#[test]
fn nothing_below_graphql_imports_it() {
    let mut files = Vec::new();
    for dir in ["services", "db", "chat", "friends", "audience"] {
        files.extend(sources(&src(dir)));
    }
    files.extend([src("paging.rs"), src("caller.rs")]);
    let found = offending(&files, &["crate::graphql", "super::graphql"]);
    assert!(
        found.is_empty(),
        "an import runs back up to graphql/:\n{}",
        found.join("\n")
    );
}

/// The server's top-level modules from the top floor down: a module imports only modules on
/// floors below its own. Modules on one floor are siblings and import none of each other.
const FLOORS: &[&[&str]] = &[
    &["startup"],
    &["http"],
    &["graphql"],
    // What every request reaches: the pools, keys, enforcer and machinery, wired together.
    &["state"],
    // Casbin's enforcer, which loads custom roles through the roles service, and the guard.
    &["authz"],
    &["services"],
    // Domain logic and machinery beside the services: the chat's generation and streaming, the
    // friendship state machine, the building blocks of authentication, the outbox's delivery.
    &["auth", "chat", "friends", "mail"],
    &["pubsub", "ratelimit", "documents"],
    &["db", "kv", "llm", "paging", "audience"],
    &["metrics"],
    &[
        "caller",
        "config",
        "breaker",
        "telemetry",
        "error",
        "permissions",
    ],
];

/// The code of `text`, line and block comments left out (string literals are kept).
fn code_of(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
        } else if rest.starts_with("//") {
            rest = rest.split_once('\n').map_or("", |(_, tail)| tail);
            code.push('\n');
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                code.push(c);
            }
            rest = chars.as_str();
        }
    }
    code
}

/// The leading identifier of `text`, if it starts with one.
fn leading_ident(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// The top-level modules `code` names through `crate::`: `crate::a::b` and every item of a
/// group `crate::{a::b, c::{d, e}}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        found.extend(leading_ident(&group[item_start..i]).map(str::to_owned));
                        item_start = i + 1;
                    }
                    _ => {}
                }
                if depth == 0 {
                    found.extend(leading_ident(&group[item_start..i]).map(str::to_owned));
                    break;
                }
            }
        } else if let Some(name) = leading_ident(rest) {
            found.insert(name.to_owned());
        }
    }
    found
}

/// The top-level module a source file of `src/` belongs to (`None` for the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("a file under src/");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

/// Which top-level modules each one imports, with the files that do.
fn module_imports() -> BTreeMap<(String, String), Vec<String>> {
    let src = src("");
    let modules: BTreeSet<&str> = FLOORS
        .iter()
        .flat_map(|floor| floor.iter().copied())
        .collect();
    let mut imports: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in sources(&src) {
        let Some(from) = module_of(&src, &file) else {
            continue;
        };
        assert!(
            modules.contains(from.as_str()),
            "module `{from}` stands on no floor of FLOORS"
        );
        let code = code_of(&std::fs::read_to_string(&file).expect("read a source file"));
        for to in crate_modules(&code) {
            if to != from && modules.contains(to.as_str()) {
                let relative = file.strip_prefix(&src).unwrap_or(&file);
                imports
                    .entry((from.clone(), to))
                    .or_default()
                    .push(relative.display().to_string());
            }
        }
    }
    imports
}

/// How high `module` stands: 0 is the ground floor.
fn floor_of(module: &str) -> usize {
    let from_top = FLOORS
        .iter()
        .position(|floor| floor.contains(&module))
        .expect("a module of FLOORS");
    FLOORS.len() - 1 - from_top
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths_and_skips_comments() {
    let code = code_of(
        "use crate::{\n    auth::{self, Viewer},\n    db::x, // crate::graphql\n    state::AppState,\n};\n\
         /* crate::http */ fn f() { crate::kv::Redis::new(); my_crate::paging::x(); }",
    );
    let found: Vec<String> = crate_modules(&code).into_iter().collect();
    assert_eq!(found, ["auth", "db", "kv", "state"]);
}

#[test]
fn nothing_under_auth_imports_the_state() {
    let src = src("");
    let mut found = Vec::new();
    for file in sources(&src.join("auth")) {
        let code = code_of(&std::fs::read_to_string(&file).expect("read a source file"));
        if crate_modules(&code).contains("state") || code.contains("AppState") {
            found.push(file.display().to_string());
        }
    }
    assert!(
        found.is_empty(),
        "auth/ reaches the server's state (take the narrow dependencies instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_import_runs_back_up_the_stack() {
    let imports = module_imports();
    let mut back_up = Vec::new();
    for ((from, to), files) in &imports {
        if floor_of(from) <= floor_of(to) {
            back_up.push(format!("{from} -> {to} ({})", files.join(", ")));
        }
    }
    assert!(
        back_up.is_empty(),
        "imports that run back up the stack of FLOORS:\n{}",
        back_up.join("\n")
    );
}
