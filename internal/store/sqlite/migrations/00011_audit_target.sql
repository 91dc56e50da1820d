-- +goose Up

-- Retention deletes a run's audit entries with the run (run.submit,
-- run.cancel, run.retry name the run as their target): without this index
-- that would scan the audit table.
CREATE INDEX audit_target ON audit (target);

-- +goose Down
DROP INDEX audit_target;
