-- fg-triples-generator: the forge messages it accepts before forge collection handles them
-- (MEMBER_SYNC, PROJECT_SYNC, FORGE_EVENT). One row per message id, so a redelivery adds nothing.
-- Forge collection (a later issue) adds the forge API cache (ETags, rate limits) beside it.
CREATE TABLE received_message (
    message_id  uuid        PRIMARY KEY,
    category    text        NOT NULL CHECK (category IN ('MEMBER_SYNC', 'PROJECT_SYNC', 'FORGE_EVENT')),
    project_id  bigint      NOT NULL,
    event       text,       -- FORGE_EVENT: X-GitHub-Event / X-Gitlab-Event
    action      text,       -- FORGE_EVENT: the payload's action, when it has one
    delivery_id text,       -- FORGE_EVENT: the delivery it came from
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX received_message_project ON received_message (project_id, received_at);
