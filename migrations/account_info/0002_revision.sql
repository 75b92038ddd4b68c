-- Bumped with every change of a mutable field (status, holds); published to Redis so caches of
-- this account elsewhere know they are stale (platform::revision).
ALTER TABLE accounts ADD COLUMN rev bigint NOT NULL DEFAULT 0;
