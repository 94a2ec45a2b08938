-- A webhook action's headers, as its rule declared them (JSON: name, text,
-- and a secret by name, never its value), read again at each attempt.
ALTER TABLE steward_actions ADD COLUMN headers TEXT;
