-- Every money-moving or ops request through the gateway, with its outcome.
CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    subject     text        NOT NULL,
    scopes      text        NOT NULL,
    method      text        NOT NULL,
    route       text        NOT NULL,
    account_id  uuid,
    request_id  text        NOT NULL,
    status      smallint    NOT NULL,
    code        text
);
CREATE INDEX audit_log_subject ON audit_log (subject, at);
CREATE INDEX audit_log_account ON audit_log (account_id, at) WHERE account_id IS NOT NULL;
