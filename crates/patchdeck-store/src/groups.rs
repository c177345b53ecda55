//! Groups, and which users and hosts belong to them. A group is the unit of an operator's scope.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::error::{Error, Result, ResultExt};
use crate::hosts::{host_from_row, Host, HOST_COLUMNS};
use crate::sql::{ms, prefixed, RowExt, SqlBuilder};
use crate::types::{GroupId, HostId, UserId};
use crate::users::{user_from_row, User, USER_COLUMNS};
use crate::Store;

/// A named set of users and hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Its id.
    pub id: GroupId,
    /// Unique name (case-sensitive).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
}

/// How many hosts and users a group has (every member, whatever a host's approval or status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounts {
    /// Hosts in the group.
    pub hosts: u32,
    /// Users in the group.
    pub users: u32,
}

/// Fields of a group to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

const COLUMNS: &str = "id, name, description, created_at";
const UNIQUES: &[(&str, &str)] = &[("name", "group name")];

fn from_row(row: &AnyRow) -> Result<Group> {
    Ok(Group {
        id: GroupId(row.int("id")?),
        name: row.text("name")?,
        description: row.text("description")?,
        created_at: row.ts("created_at")?,
    })
}

fn check_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid("group name is empty".into()));
    }
    Ok(name)
}

fn group_ids(rows: &[AnyRow]) -> Result<Vec<GroupId>> {
    rows.iter().map(|row| Ok(GroupId(row.int("group_id")?))).collect()
}

impl Store {
    /// Creates a group. [`Error::Conflict`] when the name is taken.
    pub async fn create_group(&self, name: &str, description: &str, now: Timestamp) -> Result<Group> {
        let row = sqlx::query(&format!(
            "INSERT INTO groups (name, description, created_at) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
        ))
        .bind(check_name(name)?)
        .bind(description)
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(UNIQUES, "record")?;
        from_row(&row)
    }

    /// All groups, by name.
    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM groups ORDER BY {}, id", self.text_order("name")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The group with this id.
    pub async fn get_group(&self, id: GroupId) -> Result<Option<Group>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM groups WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Renames a group or changes its description. [`Error::Conflict`] when the new name is taken.
    pub async fn update_group(&self, id: GroupId, update: &GroupUpdate) -> Result<Group> {
        let name = update.name.as_deref().map(check_name).transpose()?;
        let row = sqlx::query(&format!(
            "UPDATE groups SET name = COALESCE($2, name), description = COALESCE($3, description) \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id.0)
        .bind(name)
        .bind(update.description.as_deref())
        .fetch_optional(&self.pool)
        .await
        .classify(UNIQUES, "record")?;
        row.as_ref().map(from_row).transpose()?.ok_or(Error::NotFound("group"))
    }

    /// Deletes a group and its memberships (the users and hosts stay). A host that was only in
    /// this group becomes ungrouped, and so visible to every operator.
    pub async fn delete_group(&self, id: GroupId) -> Result<()> {
        let done = sqlx::query("DELETE FROM groups WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("group"));
        }
        Ok(())
    }

    /// Adds a user to a group; adding twice is not an error. [`Error::MissingReference`] when
    /// either does not exist.
    pub async fn add_user_to_group(&self, user: UserId, group: GroupId) -> Result<()> {
        sqlx::query("INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(user.0)
            .bind(group.0)
            .execute(&self.pool)
            .await
            .classify(&[], "user or group")?;
        Ok(())
    }

    /// Removes a user from a group; `false` when they were not in it.
    pub async fn remove_user_from_group(&self, user: UserId, group: GroupId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM user_groups WHERE user_id = $1 AND group_id = $2")
            .bind(user.0)
            .bind(group.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Adds a host to a group; adding twice is not an error. [`Error::MissingReference`] when
    /// either does not exist.
    pub async fn add_host_to_group(&self, host: HostId, group: GroupId) -> Result<()> {
        sqlx::query("INSERT INTO host_groups (host_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(host.0)
            .bind(group.0)
            .execute(&self.pool)
            .await
            .classify(&[], "host or group")?;
        Ok(())
    }

    /// Removes a host from a group; `false` when it was not in it.
    pub async fn remove_host_from_group(&self, host: HostId, group: GroupId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM host_groups WHERE host_id = $1 AND group_id = $2")
            .bind(host.0)
            .bind(group.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The groups a user belongs to (their scope, for an operator), ascending.
    pub async fn user_group_ids(&self, user: UserId) -> Result<Vec<GroupId>> {
        let rows = sqlx::query("SELECT group_id FROM user_groups WHERE user_id = $1 ORDER BY group_id")
            .bind(user.0)
            .fetch_all(&self.pool)
            .await?;
        group_ids(&rows)
    }

    /// The groups a host belongs to, ascending.
    pub async fn host_group_ids(&self, host: HostId) -> Result<Vec<GroupId>> {
        let rows = sqlx::query("SELECT group_id FROM host_groups WHERE host_id = $1 ORDER BY group_id")
            .bind(host.0)
            .fetch_all(&self.pool)
            .await?;
        group_ids(&rows)
    }

    /// The member counts of these groups, in one query; a group that does not exist is left out
    /// of the map (as is every group when `groups` is empty).
    pub async fn group_counts(&self, groups: &[GroupId]) -> Result<HashMap<GroupId, GroupCounts>> {
        if groups.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = SqlBuilder::default();
        let ids = groups.iter().map(|g| sql.arg(g.0)).collect::<Vec<_>>().join(", ");
        sql.push(&format!(
            "SELECT g.id AS group_id, \
             (SELECT COUNT(*) FROM host_groups hg WHERE hg.group_id = g.id) AS hosts, \
             (SELECT COUNT(*) FROM user_groups ug WHERE ug.group_id = g.id) AS users \
             FROM groups g WHERE g.id IN ({ids})"
        ));
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    GroupId(row.int("group_id")?),
                    GroupCounts { hosts: row.count("hosts")?, users: row.count("users")? },
                ))
            })
            .collect()
    }

    /// The names of these groups, looked up in bulk (duplicates are fine). A group that does not
    /// exist is left out of the map.
    pub async fn group_names(&self, groups: &[GroupId]) -> Result<HashMap<GroupId, String>> {
        let ids: Vec<i64> = groups.iter().map(|g| g.0).collect();
        Ok(self.names_by_id("groups", "name", &ids).await?.into_iter().map(|(id, name)| (GroupId(id), name)).collect())
    }

    /// The users in a group, by username.
    pub async fn group_users(&self, group: GroupId) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM users u JOIN user_groups ug ON ug.user_id = u.id WHERE ug.group_id = $1 ORDER BY {}, u.id",
            prefixed("u", USER_COLUMNS),
            self.text_order("u.username")
        ))
        .bind(group.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// The hosts in a group, by hostname.
    pub async fn group_hosts(&self, group: GroupId) -> Result<Vec<Host>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM hosts h JOIN host_groups hg ON hg.host_id = h.id WHERE hg.group_id = $1 ORDER BY {}, h.id",
            prefixed("h", HOST_COLUMNS),
            self.text_order("h.hostname")
        ))
        .bind(group.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(host_from_row).collect()
    }
}
