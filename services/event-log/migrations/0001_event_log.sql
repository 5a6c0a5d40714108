-- The event log: projects, their commit events, the status state machine's append-only log,
-- payloads, sync times, consumers and processed message ids. docs/internals/event-log.md explains
-- every table and index; status changes happen only through services/event-log/el_status.c.

CREATE TYPE event_status AS ENUM (
    'NEW', 'SKIPPED',
    'GENERATING_TRIPLES', 'GENERATION_RECOVERABLE_FAILURE', 'GENERATION_NON_RECOVERABLE_FAILURE',
    'TRIPLES_GENERATED',
    'TRANSFORMING_TRIPLES', 'TRANSFORMATION_RECOVERABLE_FAILURE',
    'TRANSFORMATION_NON_RECOVERABLE_FAILURE',
    'TRIPLES_STORE', 'AWAITING_DELETION', 'DELETING');

CREATE TABLE project (
    id                bigserial PRIMARY KEY,
    forge             text NOT NULL CHECK (forge IN ('github', 'gitlab', 'git')),
    forge_id          bigint,
    path              text NOT NULL,
    url               text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    latest_event_date timestamptz,
    first_synced_at   timestamptz, -- the first commit sync that completed; "done" needs one
    CHECK ((forge = 'git') = (forge_id IS NULL))
);
-- registration is idempotent on (forge, forgeId), or on the clone URL for plain git
CREATE UNIQUE INDEX project_forge_id_key ON project (forge, forge_id) WHERE forge_id IS NOT NULL;
CREATE UNIQUE INDEX project_git_url_key ON project (url) WHERE forge = 'git';

-- Payloads of ToTriplesGenerated: one row per generated batch, shared by the batch's events,
-- kept until every one of them reached TRIPLES_STORE (or was deleted).
CREATE TABLE payload (
    id         bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES project (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    data       bytea NOT NULL -- gzip'd N-Triples, as the triples generator produced them
);
CREATE INDEX payload_project ON payload (project_id);

-- One row per (project, commit). Kept narrow: status changes rewrite the row, so the commit body
-- lives in event_body and the payload in payload.
CREATE TABLE event (
    id             bigserial PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES project (id) ON DELETE CASCADE,
    sha            text NOT NULL CHECK (sha ~ '^[0-9a-f]{40}$'),
    status         event_status NOT NULL,
    event_date     timestamptz NOT NULL, -- the commit's committer time
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- not-before time for NEW and the failure statuses (backoff); since-when for processing ones
    execution_date timestamptz NOT NULL DEFAULT now(),
    attempts       integer NOT NULL DEFAULT 0, -- recoverable failures so far (backoff exponent)
    message        text,                        -- failure text, kept visible
    payload_id     bigint REFERENCES payload (id) ON DELETE SET NULL,
    UNIQUE (project_id, sha)
);
-- The dispatcher's picks: ready work per project, found without scanning finished events.
CREATE INDEX event_ready_generation ON event (project_id, execution_date)
    WHERE status IN ('NEW', 'GENERATION_RECOVERABLE_FAILURE');
CREATE INDEX event_ready_transformation ON event (project_id, execution_date)
    WHERE status IN ('TRIPLES_GENERATED', 'TRANSFORMATION_RECOVERABLE_FAILURE');
CREATE INDEX event_awaiting_deletion ON event (project_id)
    WHERE status = 'AWAITING_DELETION';
-- Zombie chasing and the capacity check: what is processing, since when.
CREATE INDEX event_processing ON event (status, execution_date)
    WHERE status IN ('GENERATING_TRIPLES', 'TRANSFORMING_TRIPLES', 'DELETING');
-- Per-project status counts (GET /projects/{id}/status) and keyset listing by project.
CREATE INDEX event_project_status ON event (project_id, status);
CREATE INDEX event_payload ON event (payload_id) WHERE payload_id IS NOT NULL;

CREATE TABLE event_body (
    event_id bigint PRIMARY KEY REFERENCES event (id) ON DELETE CASCADE,
    body     text NOT NULL -- the commit body of DESIGN.md, as commit-sync sent it
);

-- Append-only: every status change, in the same transaction as the change itself. No foreign
-- key: the history outlives deleted events (clean-up), and replay rebuilds from it.
CREATE TABLE status_log (
    id          bigserial PRIMARY KEY,
    event_id    bigint NOT NULL,
    project_id  bigint NOT NULL,
    from_status event_status,          -- NULL: the event was created
    to_status   event_status,          -- NULL: the event was deleted
    at          timestamptz NOT NULL DEFAULT now(),
    cause       text NOT NULL,         -- el_cause name: CREATION, DISPATCH, ToTriplesGenerated...
    message     text
);
CREATE INDEX status_log_event ON status_log (event_id, id);

-- When each periodic category last ran for a project; a missing row means due now.
CREATE TABLE sync_time (
    project_id  bigint NOT NULL REFERENCES project (id) ON DELETE CASCADE,
    category    text NOT NULL,
    last_synced timestamptz NOT NULL,
    PRIMARY KEY (project_id, category)
);

-- Consumers announce themselves with SUBSCRIPTION (at start and every 30 s); a category's capacity
-- is the sum over the instances heard from recently.
CREATE TABLE consumer (
    service        text NOT NULL,
    instance       text NOT NULL,
    category       text NOT NULL,
    capacity       integer NOT NULL CHECK (capacity >= 0),
    in_flight      integer NOT NULL DEFAULT 0,
    last_heartbeat timestamptz NOT NULL,
    PRIMARY KEY (service, instance, category)
);

-- Idempotency: a message id whose effect committed. Old rows are pruned periodically.
CREATE TABLE processed_message (
    id           uuid PRIMARY KEY,
    category     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_message_at ON processed_message (processed_at);

-- Work the API (main thread, no broker connection) asks the bus thread to publish: CLEAN_UP with
-- `all` for a re-provision, PROJECT_REMOVED after a deletion. No foreign key: PROJECT_REMOVED
-- outlives the project row, so the row keeps what the message needs.
CREATE TABLE project_request (
    project_id    bigint NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('REPROVISION', 'PROJECT_REMOVED')),
    project_forge text NOT NULL,
    project_path  text NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, kind)
);
