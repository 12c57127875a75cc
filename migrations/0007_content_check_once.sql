-- The content trigger (migration 0003) only where nothing checked the row
-- before: a producer's SQL insert. Rows the HTTP API writes carry the
-- digest of their request (request_sha256, migration 0006), and the API
-- checked each of them in Rust by the same rules before inserting it
-- (store::notifications::check: FCM's reserved data keys, every content
-- option; tests/api_content_check.rs holds it to "everything the trigger
-- refuses"). Running the PL/pgSQL function again per row was about a third
-- of a 1,000-row batch insert.
--
-- Updates of data or options are checked whoever wrote the row: a trigger
-- of its own, since one trigger's WHEN cannot tell an insert from an update.

DROP TRIGGER notifications_check_content ON pushrelay.notifications;

CREATE TRIGGER notifications_check_content
    BEFORE INSERT ON pushrelay.notifications
    FOR EACH ROW WHEN (NEW.request_sha256 IS NULL)
    EXECUTE FUNCTION pushrelay.check_notification_content();

CREATE TRIGGER notifications_check_content_update
    BEFORE UPDATE OF data, options ON pushrelay.notifications
    FOR EACH ROW EXECUTE FUNCTION pushrelay.check_notification_content();
