-- PostgreSQL's fair share index became an expression index (see its 0021):
-- SQLite's claims name their index (`INDEXED BY`), so it keeps its own.
-- Nothing changes here; the file keeps the two lists in step.
SELECT 1;
