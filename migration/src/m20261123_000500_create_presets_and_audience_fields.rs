//! `audience_fields` (a company's declared attribute fields), `presets` (saved audience
//! filters), and the indexes on `users` that audience filters use: GIN on `attributes`
//! (`jsonb_path_ops`, for `attributes @> ...`) and expression indexes for hot built-in fields.
//!
//! The SQL is in `migration/sql/m20261123_000500_create_presets_and_audience_fields.{up,down}.sql`.

sql_migration!(m20261123_000500_create_presets_and_audience_fields);
