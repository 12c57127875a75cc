-- Progress reads its counts from one snapshot.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY
