-- Ops may cancel a run: no account is claimed after that; starting the same run again resumes it.
ALTER TABLE payout_runs DROP CONSTRAINT payout_runs_state_check;
ALTER TABLE payout_runs ADD CONSTRAINT payout_runs_state_check
    CHECK (state IN ('RUNNING', 'COMPLETED', 'EXPIRED', 'CANCELLED'));
CREATE INDEX payout_runs_started ON payout_runs (started_at DESC);
