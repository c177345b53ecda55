-- Daily compliance samples for the dashboard's trend. One row per UTC day and per set of groups
-- ("" for hosts in no group, "3,7" for hosts in groups 3 and 7): a user limited to some groups
-- sees the sum of the rows whose set is empty or shares a group with theirs, which counts each
-- host once, as the host list does. The latest sample of a day replaces the earlier ones.
CREATE TABLE compliance_samples (
    day TEXT NOT NULL,
    group_set TEXT NOT NULL,
    scanned INTEGER NOT NULL CHECK (scanned >= 0),
    compliant INTEGER NOT NULL CHECK (compliant >= 0 AND compliant <= scanned),
    sampled_at INTEGER NOT NULL,
    PRIMARY KEY (day, group_set)
);
