-- Owners poll the fences raised lately (to catch their revisions up with any a failed change left
-- ahead): by time, without scanning every fence.
CREATE INDEX payout_fences_changed ON payout_fences (changed_at);
