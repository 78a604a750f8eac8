-- The preflight of each instance a pool makes: the diagnostics its node runs before it takes
-- work (navarch.model.Preflight as JSON; '' for none).

ALTER TABLE instances ADD COLUMN preflight TEXT NOT NULL DEFAULT '';
