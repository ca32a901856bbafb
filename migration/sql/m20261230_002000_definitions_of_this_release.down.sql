-- Nothing: the downs of the migrations that created these objects drop them.
SELECT 1;
