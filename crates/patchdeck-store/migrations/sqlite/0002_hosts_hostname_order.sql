-- Host lists sort by hostname (binary, code-point order) with the id as tiebreak; this index
-- serves that ORDER BY and the paging that follows it (same change as PostgreSQL's 0002).
CREATE INDEX hosts_hostname_order_idx ON hosts (hostname, id);
DROP INDEX hosts_hostname_idx;
