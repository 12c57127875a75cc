-- FCM's quota is per Firebase project, whatever the number of processes
-- sending for it. Each live process (a worker heard within a lease) takes
-- an equal share of the configured rate; a QUOTA_EXCEEDED seen by one is
-- written here so that every process holds the project's sends until it
-- ends.
CREATE TABLE pushrelay.fcm_quota_holds (
    project    text        PRIMARY KEY,
    held_until timestamptz NOT NULL
);
