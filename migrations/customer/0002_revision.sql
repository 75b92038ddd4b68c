-- Bumped with every change of a mutable field (status); published to Redis so caches of this
-- customer elsewhere know they are stale (platform::revision).
ALTER TABLE customers ADD COLUMN rev bigint NOT NULL DEFAULT 0;
