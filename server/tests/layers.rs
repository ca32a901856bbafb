//! The import rules of the layers, checked on the source: GraphQL modules hold types and thin
//! resolvers and reach the database only through `services` (no `entity`, no sea-orm); no
//! resolver begins or commits a transaction itself (`RequestScope::read` / `write` lend one);
//! the caller module is a leaf.

// A test: a source file that cannot be read fails it.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

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
