-- Remediation episodes that reset a GPU or reboot a machine before they replace it, and the
-- bootstrap of each instance a pool makes (navarch.model.Bootstrap as JSON; '' for none).

ALTER TABLE remediations ADD COLUMN action TEXT NOT NULL DEFAULT 'replace';
ALTER TABLE remediations ADD COLUMN gpu_index INTEGER NOT NULL DEFAULT -1;

ALTER TABLE instances ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN bootstrap TEXT NOT NULL DEFAULT '';
