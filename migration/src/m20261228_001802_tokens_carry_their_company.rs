//! One-time secrets carry their company, and the definer functions look a token up by
//! (company_id, token_hash). The SQL is in `migration/sql/`.

sql_migration!(m20261228_001802_tokens_carry_their_company);
