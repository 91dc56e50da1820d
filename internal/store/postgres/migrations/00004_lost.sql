-- +goose Up

-- lost counts the attempts of a run lost with their worker (it died or went
-- away holding the run). The engine fails a run lost too often: one that
-- kills its worker would otherwise be retried forever. Not indexed: the
-- update stays HOT.
ALTER TABLE runs ADD COLUMN lost integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE runs DROP COLUMN lost;
