// Building blocks of the list pages: a horizontally scrolling table, a skeleton, server-side
// paging controls, status chips, and the loading / error / empty switch every list needs.

import type { ReactNode } from "react";
import { Box, Chip, Paper, Skeleton, TableContainer, TablePagination, type ChipProps } from "@mui/material";
import { EmptyState } from "./EmptyState";
import { ErrorPanel } from "./errors";

/** Rows that are loading: grey bars the height of a row. */
export function TableSkeleton({ label, rows = 5 }: { label: string; rows?: number }) {
  return (
    <Box aria-busy="true" aria-label={label} role="status" sx={{ px: 2, py: 1 }}>
      {Array.from({ length: rows }, (_, i) => (
        <Skeleton key={i} height={44} />
      ))}
    </Box>
  );
}

/** A table that scrolls sideways on narrow screens instead of squeezing its columns. */
export function ScrollTable({ children, label }: { children: ReactNode; label?: string }) {
  return (
    <TableContainer
      component={Box}
      tabIndex={0}
      role="region"
      aria-label={label}
      sx={{ overflowX: "auto", "& td, & th": { whiteSpace: "nowrap" }, "& td.wrap": { whiteSpace: "normal" } }}
    >
      {children}
    </TableContainer>
  );
}

interface QueryState {
  isPending: boolean;
  isError: boolean;
  error: unknown;
  refetch: () => unknown;
}

interface ListBodyProps {
  query: QueryState;
  /** What is loading, for screen readers. */
  what: string;
  isEmpty: boolean;
  empty: ReactNode;
  children: ReactNode;
}

/** Skeleton while loading, the error with Retry, the empty state, or the list. */
export function ListBody({ query, what, isEmpty, empty, children }: ListBodyProps) {
  if (query.isPending) return <TableSkeleton label={`Loading ${what}`} />;
  if (query.isError) {
    return (
      <Box sx={{ p: 2 }}>
        <ErrorPanel error={query.error} title={`Could not load ${what}`} onRetry={() => void query.refetch()} />
      </Box>
    );
  }
  if (isEmpty) return <>{empty}</>;
  return <>{children}</>;
}

export { EmptyState };

interface PagerProps {
  total: number;
  page: number;
  limit: number;
  onPage: (page: number) => void;
  onLimit?: (limit: number) => void;
  sizes?: number[];
}

/** Server-side paging (`limit` and `offset`): only the current page is ever fetched. */
export function Pager({ total, page, limit, onPage, onLimit, sizes = [25, 50, 100, 200] }: PagerProps) {
  return (
    <TablePagination
      component="div"
      count={total}
      page={total === 0 ? 0 : Math.min(page, Math.max(0, Math.ceil(total / limit) - 1))}
      rowsPerPage={limit}
      rowsPerPageOptions={onLimit ? sizes : [limit]}
      onPageChange={(_, p) => onPage(p)}
      onRowsPerPageChange={onLimit ? (e) => onLimit(Number(e.target.value)) : undefined}
      sx={{ "& .MuiTablePagination-toolbar": { flexWrap: "wrap" } }}
    />
  );
}

/** An outlined card around a list. */
export function ListCard({ children }: { children: ReactNode }) {
  return (
    <Paper variant="outlined" sx={{ overflow: "hidden" }}>
      {children}
    </Paper>
  );
}

const STATE_COLORS: Record<string, ChipProps["color"]> = {
  online: "success",
  completed: "success",
  active: "success",
  intact: "success",
  success: "success",
  approved: "success",
  running: "info",
  sent: "info",
  pending: "default",
  offline: "warning",
  timed_out: "warning",
  expired: "warning",
  used_up: "default",
  cancelled: "default",
  unreachable: "error",
  degraded: "warning",
  failed: "error",
  failure: "error",
  denied: "error",
  revoked: "default",
  rejected: "error",
  broken: "error",
  // Deployments and their hosts.
  succeeded: "success",
  partially_failed: "warning",
  halted: "warning",
  awaiting_approval: "warning",
  planning: "default",
  queued: "default",
  waiting_for_window: "default",
  rebooting: "info",
  verifying: "info",
  rolling_back: "info",
  rolled_back: "default",
  skipped: "default",
};

/** A state word as a coloured chip ("timed_out" reads "timed out"). */
export function StateChip({ value, label }: { value: string; label?: string }) {
  return (
    <Chip
      size="small"
      variant="outlined"
      color={STATE_COLORS[value] ?? "default"}
      label={label ?? value.replace(/_/g, " ")}
    />
  );
}
