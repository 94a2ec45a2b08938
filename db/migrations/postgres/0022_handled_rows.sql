-- A batch wrote its handled events' rows with the columns shifted (the time
-- as the tenant, the tenant as the id, the id as the time), one row a batch
-- under a key no event has. Those rows are removed; they kept nothing (an
-- event's own row keeps its id from being pushed twice while it is kept).
DELETE FROM steward_handled WHERE tenant LIKE '____-__-__T__:__:__%Z';
