-- Audit first, then act: a request's row is written (and committed) before it is forwarded, its
-- outcome appended after it is answered. Nothing is ever changed or removed: both tables refuse
-- UPDATE, DELETE and TRUNCATE for every role (a trigger; run the gateway as a role that does not
-- own them, e.g. gateway_app below, and it cannot drop the triggers either).
ALTER TABLE audit_log ALTER COLUMN status DROP NOT NULL;
ALTER TABLE audit_log ADD COLUMN request_digest text;
ALTER TABLE audit_log ADD COLUMN client_request_id text;

CREATE TABLE audit_outcomes (
    audit_id  bigint      PRIMARY KEY REFERENCES audit_log (id),
    at        timestamptz NOT NULL DEFAULT now(),
    status    smallint    NOT NULL,
    code      text
);

CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER audit_outcomes_append_only BEFORE UPDATE OR DELETE ON audit_outcomes
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER audit_outcomes_no_truncate BEFORE TRUNCATE ON audit_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();

-- Each request with its outcome (a refusal before acting is one row with its status).
CREATE VIEW audit_trail AS
SELECT l.id, l.at, l.subject, l.scopes, l.method, l.route, l.account_id, l.request_id, l.client_request_id,
       l.request_digest, COALESCE(o.status, l.status) AS status, COALESCE(o.code, l.code) AS code,
       o.at AS answered_at
FROM audit_log l LEFT JOIN audit_outcomes o ON o.audit_id = l.id;

-- Where the gateway runs as its own role (production: create gateway_app before this migration,
-- run the migration as the owner, the gateway with MIGRATE_ON_START=false), it may only read and
-- append — and not choose a row's id or time.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gateway_app') THEN
        REVOKE ALL ON audit_log, audit_outcomes, rollout_changes FROM gateway_app;
        GRANT SELECT ON audit_log, audit_outcomes, audit_trail, rollout_changes TO gateway_app;
        GRANT INSERT (subject, scopes, method, route, account_id, request_id, client_request_id, request_digest,
                      status, code) ON audit_log TO gateway_app;
        GRANT INSERT (audit_id, status, code) ON audit_outcomes TO gateway_app;
        -- UPDATE only because LOCK TABLE … IN EXCLUSIVE MODE (serialising versions) needs it.
        GRANT INSERT, UPDATE ON rollout_changes TO gateway_app;
        GRANT USAGE ON SEQUENCE audit_log_id_seq TO gateway_app;
    END IF;
END;
$$;

