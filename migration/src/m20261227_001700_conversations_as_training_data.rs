//! Conversations as training data: the company's policy and each conversation's choice. The
//! SQL is in `migration/sql/`.

sql_migration!(m20261227_001700_conversations_as_training_data);
