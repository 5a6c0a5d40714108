-- Two more per-row costs of a status transition (docs/internals/event-log.md "What a transition
-- costs"), measured with bench/eventlog.sh on 1,000,000 events:
--
-- An event's payload_id is no longer a foreign key. Its check ran once per event row whenever a
-- batch of events took their payload (ToTriplesGenerated), a fifth of that step's cost, and
-- guarded nothing the code does not already guarantee: a payload is referenced only by the
-- events of the transaction that inserted it, and the tick's sweep (el_schedule_sweep_payloads)
-- deletes only payloads no event refers to; a dispatch that finds a payload missing sends the
-- events back to be generated again (el_dispatch.c).
ALTER TABLE event DROP CONSTRAINT event_payload_id_fkey;

-- The sha's form is checked by a domain instead of a table CHECK: a table CHECK runs again on
-- every UPDATE of the row (every transition), a domain's only when a value is assigned to it
-- (the event's creation). Same rule as 0002's CHECK.
CREATE DOMAIN commit_sha AS text
    CHECK (octet_length(VALUE) = 40 AND encode(decode(VALUE, 'hex'), 'hex') = VALUE);
ALTER TABLE event DROP CONSTRAINT event_sha_check;
ALTER TABLE event ALTER COLUMN sha TYPE commit_sha;
