DROP INDEX IF EXISTS activities_user_kind_occurred_idx;
