//! The import rules of the layers, checked on the source: only `services/` and `db/` query the
//! database (name `entity` or sea-orm; elsewhere only the glue of [`ORM_GLUE`]), GraphQL
//! modules not even through the glue; the pure domain modules ([`PURE`]) name no sea-orm at
//! all; no resolver begins or commits a transaction itself (`RequestScope::read` / `write`
//! lend one); the caller module is a leaf; and the modules of the server form a stack
//! ([`FLOORS`]) in which no import runs back up, nothing under `auth/` reaching the server's
//! state.

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

/// Where code outside `services/` and `db/` may name `entity` or sea-orm, by file (under
/// `src/`) and the path it names, and why. Nothing else there may: a query belongs in a
/// service (or `db/`, for the typed SQL functions and the pool's machinery), and the layers
/// above hold the pool as `db::DatabaseConnection`.
const ORM_GLUE: &[(&str, &str, &str)] = &[
    (
        "chat/events.rs",
        "entity::messages::{MessageRole, MessageStatus}",
        "the closed enums of messages, defined once with their table",
    ),
    (
        "friends/mod.rs",
        "entity::friendships::FriendshipStatus",
        "the closed enum of friendships, defined once with its table",
    ),
    (
        "audience/mod.rs",
        "entity::audience_fields::FieldType",
        "the closed enum of audience field types, defined once with its table",
    ),
    (
        "pubsub.rs",
        "sea_orm::sqlx::postgres::PgListener",
        "LISTEN of the PostgreSQL fallback of pub/sub: a driver connection, no query",
    ),
    (
        "pubsub.rs",
        "sea_orm::sqlx::Error",
        "the error of that listener",
    ),
    (
        "http/health.rs",
        "sea_orm::sqlx::",
        "the readiness probe: the driver's own connection and errors, to say which dependency \
         is down without the driver's text",
    ),
];

/// The pure domain modules (files or folders under `src/`): the audience language, the chat's
/// prompt and generation, tokens. They name no sea-orm, not even through [`ORM_GLUE`].
const PURE: &[&str] = &[
    "activities",
    "audience",
    "chat/generate.rs",
    "chat/prompt.rs",
    "auth/tokens.rs",
    "auth/jwt.rs",
    "auth/jwt",
];

/// Each place in `code` where a path starts at the crate `root` (`root::...`), as the rest of
/// the code from there.
fn path_roots<'a>(code: &'a str, root: &str) -> Vec<&'a str> {
    code.match_indices(root)
        .filter(|(at, _)| {
            let before = code[..*at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                && code[at + root.len()..].starts_with("::")
        })
        .map(|(at, _)| &code[at..])
        .collect()
}

/// `file:line: path` of every path that `file` (of `src/`) starts at `entity` or `sea_orm`,
/// except those `allowed` (prefixes of what the path reads).
fn orm_paths(src: &Path, file: &Path, allowed: &[&str]) -> Vec<String> {
    let code = code_of(&std::fs::read_to_string(file).expect("read a source file"));
    let relative = file.strip_prefix(src).unwrap_or(file);
    let mut found = Vec::new();
    for root in ["entity", "sea_orm"] {
        for rest in path_roots(&code, root) {
            if !allowed.iter().any(|allowed| rest.starts_with(allowed)) {
                let line = code.len() - rest.len();
                let number = code[..line].matches('\n').count() + 1;
                let path: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                found.push(format!("{}:{number}: {path}", relative.display()));
            }
        }
    }
    found
}

#[test]
fn the_orm_path_reader_sees_uses_and_paths_and_skips_strings_and_other_crates() {
    let code = code_of(
        "use sea_orm::{EntityTrait, QueryFilter};\nuse entity::users;\n\
         let x = entity::users::Entity::find(); // sea_orm::Statement\n\
         const F: &str = \"info,sea_orm=warn\"; my_entity::f(); crate::db::DbErr;",
    );
    let entity: Vec<&str> = path_roots(&code, "entity")
        .into_iter()
        .map(|rest| rest.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(entity, ["entity::users;", "entity::users::Entity::find();"]);
    assert_eq!(path_roots(&code, "sea_orm").len(), 1);
}

#[test]
fn only_services_and_db_query_the_database() {
    let src = src("");
    let mut found = Vec::new();
    let mut used = BTreeSet::new();
    for file in sources(&src) {
        let relative = file.strip_prefix(&src).expect("a file under src/");
        let relative = relative.to_string_lossy().replace('\\', "/");
        if relative.starts_with("services/") || relative.starts_with("db/") {
            continue;
        }
        let allowed: Vec<&str> = ORM_GLUE
            .iter()
            .filter(|(glue_file, _, _)| *glue_file == relative)
            .map(|(_, path, _)| *path)
            .collect();
        let everything = orm_paths(&src, &file, &[]);
        let offending = orm_paths(&src, &file, &allowed);
        if everything.len() > offending.len() {
            used.insert(relative.clone());
        }
        found.extend(offending);
    }
    assert!(
        found.is_empty(),
        "entity or sea-orm named outside services/ and db/ (move the query into a service, or \
         name the glue in ORM_GLUE with its reason):\n{}",
        found.join("\n")
    );
    let stale: Vec<&str> = ORM_GLUE
        .iter()
        .map(|(file, _, _)| *file)
        .filter(|file| !used.contains(*file))
        .collect();
    assert!(
        stale.is_empty(),
        "ORM_GLUE names files that no longer need it: {stale:?}"
    );
}

#[test]
fn pure_domain_modules_name_no_sea_orm() {
    let src = src("");
    let mut files = Vec::new();
    for place in PURE {
        let path = src.join(place);
        if path.is_dir() {
            files.extend(sources(&path));
        } else {
            assert!(path.is_file(), "{place} of PURE is not a source file");
            files.push(path);
        }
    }
    assert!(files.len() > 5, "the pure modules were not found");
    let mut found = Vec::new();
    for file in &files {
        let code = code_of(&std::fs::read_to_string(file).expect("read a source file"));
        if !path_roots(&code, "sea_orm").is_empty() || code.contains("crate::services") {
            found.push(file.display().to_string());
        }
    }
    assert!(
        found.is_empty(),
        "a pure domain module names sea-orm or the services:\n{}",
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
    // Domain logic and machinery beside the services: the rules of activities and their live
    // announcements, the chat's generation and streaming, the friendship state machine, the
    // building blocks of authentication, the outbox's delivery, OpenID providers and the state
    // of their flows.
    &["activities", "auth", "chat", "friends", "mail", "oidc"],
    &["pubsub", "ratelimit", "documents"],
    // The LLM providers, a company's own among them, whose keys `secrets` opens.
    &["llm"],
    // Secrets sealed at rest, and their rotation over the database.
    &["secrets"],
    &["db", "kv", "paging", "audience"],
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
