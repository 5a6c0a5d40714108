-- Whether a requested commit sync has run. sync_time.last_synced moves when COMMIT_SYNC is sent
-- and again when a sync completes, so it cannot tell requested from in flight from completed: a
-- project looked synced (and done) right after POST /projects/{id}/sync or a COMMIT_SYNC_REQUEST,
-- before the sync had run. The rule (docs/internals/event-log.md "Schedules"): a request is
-- answered once a COMMIT_SYNC sent at or after it has completed. Each completion (a CREATION with
-- syncComplete) takes the oldest COMMIT_SYNC still in flight as the one it answers: whatever the
-- order in which syncs complete, the m oldest sent are never newer than the m that completed, so
-- a request is never taken as answered too early.
ALTER TABLE project
    ADD COLUMN sync_requested_at  timestamptz, -- the latest COMMIT_SYNC_REQUEST or POST .../sync
    ADD COLUMN sync_dispatched_at timestamptz, -- the latest COMMIT_SYNC sent
    -- when each COMMIT_SYNC not yet answered by a completion was sent, oldest first (capped)
    ADD COLUMN sync_in_flight     timestamptz[] NOT NULL DEFAULT '{}',
    ADD COLUMN sync_answered_at   timestamptz; -- the newest COMMIT_SYNC taken as completed
