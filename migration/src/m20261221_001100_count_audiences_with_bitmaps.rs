//! Audience counts read bitmaps, not the users heap: member numbers per company
//! (`audience_members`), one bitmap per term and segment of 1024 members (`audience_bits`), kept in
//! step by statement-level triggers on `users`, read through the masked view `audience_bitmaps`.
//! The SQL is in `migration/sql/`.

sql_migration!(m20261221_001100_count_audiences_with_bitmaps);
