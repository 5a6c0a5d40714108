-- The webhook's store: the projects it accepts deliveries for, the archive of every accepted
-- delivery (raw body and the headers a replay needs), and the outbox the relay publishes from.
-- docs/internals/webhook.md explains the tables, the group commit and the relay.

-- Activated projects: (forge, forge id) -> event-log's project id. Plain git projects have no
-- forge id and receive no deliveries.
CREATE TABLE project (
    id         bigint PRIMARY KEY CHECK (id BETWEEN 1 AND 9007199254740991), -- event-log's id
    forge      text NOT NULL CHECK (forge IN ('github', 'gitlab', 'git')),
    forge_id   bigint CHECK (forge_id >= 0),
    path       text NOT NULL,
    url        text,   -- clone URL, from activation
    hook_id    bigint, -- the forge's id of the hook activation created; NULL: none
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((forge = 'git') = (forge_id IS NULL))
);
CREATE UNIQUE INDEX project_forge_id_key ON project (forge, forge_id) WHERE forge_id IS NOT NULL;

-- The archive. Rows never change after the insert (publication is tracked in outbox), so a row is
-- written once. The body is compressed with lz4 once a row passes 4 KiB, which keeps an 8 KiB
-- push payload inline in its heap page instead of in TOAST chunks.
CREATE TABLE delivery (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    forge        text NOT NULL CHECK (forge IN ('github', 'gitlab')),
    dedupe_key   text NOT NULL, -- X-GitHub-Delivery; GitLab Idempotency-Key, X-Gitlab-Event-UUID or sha256(body)
    event        text NOT NULL, -- X-GitHub-Event / X-Gitlab-Event
    action       text,          -- the payload's action, where it has one
    forge_id     bigint,        -- repository.id / project.id; NULL: the delivery names none
    project_id   bigint,        -- event-log's project id; NULL when forge_id is
    project_path text,
    route        text NOT NULL CHECK (route IN ('commit_sync', 'forge_event', 'ignored')),
    received_at  timestamptz NOT NULL DEFAULT now(),
    headers      text NOT NULL, -- JSON object of the delivery headers a replay needs (no secret)
    body_bytes   integer NOT NULL,
    body         text COMPRESSION lz4 NOT NULL
) WITH (toast_tuple_target = 4096);
CREATE UNIQUE INDEX delivery_dedupe_key ON delivery (forge, dedupe_key);
-- time ranges (replay, export, retention); BRIN costs next to nothing per insert
CREATE INDEX delivery_received_at ON delivery USING brin (received_at);

-- Messages to publish, in seq order: an archived delivery's (delivery_id), or activation's
-- COMMIT_SYNC_REQUEST for a new project (project_* set, no delivery). A row is deleted once
-- RabbitMQ confirmed its message; a replay inserts a new row (so a new message id).
CREATE TABLE outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint,
    project_id   bigint,
    forge        text,
    project_path text,
    message_id   uuid NOT NULL DEFAULT gen_random_uuid(),
    queued_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((delivery_id IS NULL) = (project_id IS NOT NULL))
);
-- replay, retention and export ask whether a delivery is still queued
CREATE INDEX outbox_delivery_id ON outbox (delivery_id);
