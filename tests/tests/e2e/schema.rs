//! `schema.graphql` at the root is exactly what `server print-schema` prints.

#[test]
fn schema_graphql_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let current = server::graphql::sdl();
    assert!(
        checked_in == current,
        "schema.graphql is out of date: run `make schema` (cargo run -p server -- print-schema > schema.graphql)"
    );
}
