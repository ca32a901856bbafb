-- A participant's activities of one kind in a window, for comparisons and leaderboards among
-- friends: each participant's rows are read from here, so that the activities policy judges
-- only the rows of that kind in that window (not every activity of the participant).
CREATE INDEX IF NOT EXISTS activities_user_kind_occurred_idx
    ON activities (company_id, user_id, kind_id, occurred_at);
