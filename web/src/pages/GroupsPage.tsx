import { useState } from "react";
import { Link as RouterLink, useNavigate } from "react-router-dom";
import { Button, Link, Table, TableBody, TableCell, TableHead, TableRow } from "@mui/material";
import AddIcon from "@mui/icons-material/Add";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { keys } from "../api/fleet";
import { groupKeys, groupsApi, type GroupListQuery, type GroupView } from "../api/groups";
import { useMe } from "../auth/session";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { DeleteGroupDialog, GroupDialog } from "../components/GroupDialog";
import { PageHeader } from "../components/PageHeader";
import { EditDeleteButtons, RowButtons } from "../components/RowActions";
import { ListBody, ListCard, Pager, ScrollTable } from "../components/tables";
import { intParam, useUrlParams } from "../urlState";

const PAGE_SIZES = [25, 50, 100];

/** A group's host count (from the group list), linking to its hosts in the host list. */
export function GroupHostCount({ groupId, count }: { groupId: number; count: number }) {
  return (
    <Link component={RouterLink} to={`/hosts?group=${groupId}`} aria-label={`${count} ${count === 1 ? "host" : "hosts"} in the host list`}>
      {count}
    </Link>
  );
}

export function GroupsPage() {
  const client = useQueryClient();
  const navigate = useNavigate();
  const me = useMe();
  const isAdmin = me.data?.user.role === "admin";
  const { get, set, page } = useUrlParams();
  const limit = intParam(get("limit"), 25, PAGE_SIZES);
  const q: GroupListQuery = { limit, offset: page * limit };
  const groups = useQuery({
    queryKey: groupKeys.page(q),
    queryFn: ({ signal }) => groupsApi.list(q, signal),
    placeholderData: keepPreviousData,
  });
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<GroupView | null>(null);
  const [deleting, setDeleting] = useState<GroupView | null>(null);
  const items = groups.data?.items ?? [];
  const refresh = () => Promise.all([client.invalidateQueries({ queryKey: groupKeys.all }), client.invalidateQueries({ queryKey: keys.hosts })]);

  return (
    <>
      <PageHeader
        title="Groups"
        subtitle={
          isAdmin
            ? "Named sets of hosts and users. A user sees the hosts of their groups; deployments and maintenance windows can target a group."
            : "The groups you belong to: you see their hosts. Administrators manage groups and their members."
        }
        actions={
          isAdmin ? (
            <Button variant="contained" startIcon={<AddIcon />} onClick={() => setCreating(true)}>
              New group
            </Button>
          ) : undefined
        }
      />
      <ListCard>
        <ListBody
          query={groups}
          what="groups"
          isEmpty={items.length === 0}
          empty={
            isAdmin ? (
              <EmptyState
                title="No groups yet"
                action={
                  <Button variant="outlined" onClick={() => setCreating(true)}>
                    Create the first group
                  </Button>
                }
              >
                Create a group, then add hosts and users to it: operators and viewers see only the hosts of their groups.
              </EmptyState>
            ) : (
              <EmptyState title="You are in no group">
                You see the hosts that are in no group. Ask an administrator to add you to a group to see its hosts.
              </EmptyState>
            )
          }
        >
          <ScrollTable label="Groups">
            <Table size="small" aria-label="Groups">
              <TableHead>
                <TableRow>
                  <TableCell>Name</TableCell>
                  <TableCell>Description</TableCell>
                  <TableCell align="right">Hosts</TableCell>
                  <TableCell align="right">Users</TableCell>
                  <TableCell>Created</TableCell>
                  <TableCell align="right">{isAdmin ? "Actions" : "Links"}</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((g) => (
                  <TableRow key={g.id} hover>
                    <TableCell>
                      <Link component={RouterLink} to={`/groups/${g.id}`} sx={{ fontWeight: 500 }}>
                        {g.name}
                      </Link>
                    </TableCell>
                    <TableCell className="wrap" sx={{ minWidth: 200, color: "text.secondary" }}>
                      {g.description || "—"}
                    </TableCell>
                    <TableCell align="right">
                      <GroupHostCount groupId={g.id} count={g.host_count} />
                    </TableCell>
                    <TableCell align="right">{g.user_count}</TableCell>
                    <TableCell>
                      <DateTime value={g.created_at} />
                    </TableCell>
                    <TableCell align="right">
                      <RowButtons>
                        <Button size="small" component={RouterLink} to={`/groups/${g.id}/policy`} aria-label={`Deployment policy of ${g.name}`}>
                          Policy
                        </Button>
                        <Button size="small" component={RouterLink} to={`/maintenance-windows?group=${g.id}`} aria-label={`Maintenance windows of ${g.name}`}>
                          Windows
                        </Button>
                        {isAdmin && <EditDeleteButtons name={g.name} onEdit={() => setEditing(g)} onDelete={() => setDeleting(g)} />}
                      </RowButtons>
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
        {groups.data && groups.data.total > Math.min(...PAGE_SIZES) && (
          <Pager
            total={groups.data.total}
            page={page}
            limit={limit}
            sizes={PAGE_SIZES}
            onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
            onLimit={(l) => set({ limit: l === 25 ? "" : l })}
          />
        )}
      </ListCard>
      <GroupDialog
        open={creating}
        onClose={() => setCreating(false)}
        onSaved={(g) => {
          setCreating(false);
          void refresh();
          navigate(`/groups/${g.id}`);
        }}
      />
      <GroupDialog
        open={editing !== null}
        group={editing}
        onClose={() => setEditing(null)}
        onSaved={() => {
          setEditing(null);
          void refresh();
        }}
      />
      <DeleteGroupDialog
        open={deleting !== null}
        group={deleting}
        onClose={() => setDeleting(null)}
        onDeleted={async () => {
          setDeleting(null);
          await refresh();
        }}
      />
    </>
  );
}
