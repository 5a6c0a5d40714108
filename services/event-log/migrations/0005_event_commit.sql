-- The event row splits in two: what changes on every transition stays in `event` (status,
-- execution date, attempts, message, payload), what an event is about and never changes moves to
-- `event_commit` (project, sha, committer date, creation time). docs/internals/event-log.md "What
-- a transition costs" has the measurements.
--
-- Why: a status change can never be a HOT update (status is named by the partial indexes), so
-- every transition wrote a new row version into every index of `event`, among them the unique
-- (project_id, sha) key on text, with its uniqueness check and the clean-up of the versions it
-- piled up. Split, a transition writes a narrower row (no 40-byte sha, no dates) and one index
-- entry less; the unique key is written once, at creation. Measured on 1,000,000 events, the same
-- changes of 500 run alternately on both layouts in one database: 0.63-0.69 of the time.
--
-- Nothing on `event` is keyed by project any more except the partial indexes; what reads a whole
-- project reads event_commit's (project_id, event_id) and joins by id. Per-project status counts
-- read the partial indexes, which cover every status but TRIPLES_STORE, and take TRIPLES_STORE as
-- the rest of event_commit's count (el_project.c): event_stopped is the one added for that, and
-- it only gets an entry when an event stops short of the store.

CREATE TABLE event_commit (
    event_id   bigint PRIMARY KEY REFERENCES event (id) ON DELETE CASCADE,
    project_id bigint NOT NULL,      -- the event's; its foreign key to project is on event
    sha        commit_sha NOT NULL,
    event_date timestamptz NOT NULL, -- the commit's committer time
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, sha)         -- CREATION is idempotent on it
);
-- A project's events in id order: listings, counts, whole-project changes.
CREATE INDEX event_commit_project ON event_commit (project_id, event_id);

INSERT INTO event_commit (event_id, project_id, sha, event_date, created_at)
SELECT id, project_id, sha, event_date, created_at FROM event;

-- Dropping sha also drops the unique (project_id, sha) key of event. The rows shrink as they are
-- next rewritten (a transition writes a new version without the dropped columns).
ALTER TABLE event DROP COLUMN sha, DROP COLUMN event_date, DROP COLUMN created_at;

-- The statuses no other partial index covers, except TRIPLES_STORE (see above).
CREATE INDEX event_stopped ON event (project_id)
    WHERE status IN ('SKIPPED', 'GENERATION_NON_RECOVERABLE_FAILURE',
                     'TRANSFORMATION_NON_RECOVERABLE_FAILURE');

ANALYZE event_commit;
