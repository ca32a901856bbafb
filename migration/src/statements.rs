//! Splits a file of SQL into its statements, so that each runs as a query of its own.
//!
//! Citus propagates some DDL of a distributed table (`ALTER TABLE ... ENABLE ROW LEVEL
//! SECURITY`, `DROP POLICY`, `CREATE OR REPLACE TRIGGER`, ...) to the workers with the text of the
//! whole query that held it: a file sent as one multi-statement query then fails on the workers
//! with "cannot insert multiple commands into a prepared statement". Hand-written (about forty
//! lines) because no crate of the dependency tree splits PostgreSQL scripts, and a full SQL
//! parser would have to understand every statement of the files just to find their ends: this
//! knows only what can hide a `;` — quoted strings and identifiers, `E'...'` strings with
//! backslash escapes, dollar-quoted bodies (`$$ ... $$`, `$tag$ ... $tag$`) and comments.

/// The statements of `sql`, each without its `;`, comments and blank ones left out.
pub fn split(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut has_code = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                continue;
            }
            b'\'' | b'"' => {
                let escapes = c == b'\''
                    && i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !(bytes[i - 2].is_ascii_alphanumeric() || bytes[i - 2] == b'_'));
                i += 1;
                while i < bytes.len() {
                    if escapes && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == c {
                        // A doubled quote stands for itself.
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                has_code = true;
                continue;
            }
            b'$' => {
                let tag_end = sql[i + 1..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .map(|n| i + 1 + n);
                let starts_tag =
                    i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                if let Some(end) = tag_end.filter(|&e| bytes[e] == b'$' && starts_tag)
                    && !sql[i + 1..end].starts_with(|ch: char| ch.is_ascii_digit())
                {
                    let tag = &sql[i..=end];
                    i = sql[end + 1..]
                        .find(tag)
                        .map_or(bytes.len(), |n| end + 1 + n + tag.len());
                    has_code = true;
                    continue;
                }
            }
            b';' => {
                if has_code {
                    statements.push(sql[start..i].trim());
                }
                start = i + 1;
                has_code = false;
                i += 1;
                continue;
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            has_code = true;
        }
        i += 1;
    }
    if has_code {
        statements.push(sql[start..].trim());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_bodies_and_comments() {
        let sql = "-- a comment; still a comment\n\
                   CREATE TABLE t (a text DEFAULT ';');\n\
                   /* a block; comment */ SELECT \"odd;name\" FROM t;\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n\
                   DO $body$ BEGIN PERFORM 1; END $body$;\n\
                   SELECT 'it''s; fine', E'a\\'; b';\n\
                   SELECT $1::text;\n\
                   -- trailing comment";
        assert_eq!(
            split(sql),
            [
                "-- a comment; still a comment\nCREATE TABLE t (a text DEFAULT ';')",
                "/* a block; comment */ SELECT \"odd;name\" FROM t",
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
                "DO $body$ BEGIN PERFORM 1; END $body$",
                "SELECT 'it''s; fine', E'a\\'; b'",
                "SELECT $1::text",
            ]
        );
    }

    #[test]
    fn blank_and_comment_only_pieces_are_left_out() {
        assert!(split("  ;\n-- nothing\n;").is_empty());
        assert_eq!(split("SELECT 1"), ["SELECT 1"]);
    }

    #[test]
    fn every_current_file_splits_into_whole_statements() {
        for (name, sql) in crate::current::FILES {
            let statements = split(sql);
            assert!(!statements.is_empty(), "{name}");
            for statement in statements {
                let dollars = statement.matches("$$").count();
                assert!(dollars % 2 == 0, "{name}: a body cut in two: {statement}");
            }
        }
    }
}
