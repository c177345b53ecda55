-- Host lists sort by hostname in code-point order (COLLATE "C", the same order as SQLite) with
-- the id as tiebreak. An index in the database's own collation cannot serve that ORDER BY, so
-- every page sorted the whole table; this one can (docs/benchmarks.md, "Manager").
CREATE INDEX hosts_hostname_order_idx ON hosts (hostname COLLATE "C", id);
DROP INDEX hosts_hostname_idx;
