-- Bumped with every new rate schedule; published to Redis so cached estimates of the product's
-- accounts know the rates changed (platform::revision).
ALTER TABLE products ADD COLUMN rates_rev bigint NOT NULL DEFAULT 0;
