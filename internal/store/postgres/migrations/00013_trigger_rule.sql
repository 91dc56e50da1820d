-- +goose Up

-- trigger_rule: when a run of a job with upstream jobs (depends_on) may go
-- (store/deps.go); '' is the default rule, all_success.
ALTER TABLE jobs ADD COLUMN trigger_rule text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE jobs DROP COLUMN trigger_rule;
