import { Fragment, useState } from "react";
import { Box, Collapse, IconButton, Table, TableBody, TableCell, TableHead, TableRow } from "@mui/material";
import KeyboardArrowDownIcon from "@mui/icons-material/KeyboardArrowDown";
import KeyboardArrowRightIcon from "@mui/icons-material/KeyboardArrowRight";
import type { AuditView } from "../api/fleet";
import { MONO_FONTS } from "../theme";
import { DateTime } from "./DateTime";
import { ScrollTable, StateChip } from "./tables";

/** Audit entries, each expandable to its details (as JSON text). */
export function AuditTable({ items, label }: { items: AuditView[]; label: string }) {
  const [open, setOpen] = useState<Set<number>>(new Set());
  const toggle = (id: number) =>
    setOpen((prev) => {
      const next = new Set(prev);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  return (
    <ScrollTable label={label}>
      <Table size="small" aria-label={label}>
        <TableHead>
          <TableRow>
            <TableCell padding="checkbox" />
            <TableCell>Time</TableCell>
            <TableCell>Actor</TableCell>
            <TableCell>Action</TableCell>
            <TableCell>Target</TableCell>
            <TableCell>Outcome</TableCell>
            <TableCell>Source address</TableCell>
          </TableRow>
        </TableHead>
        <TableBody>
          {items.map((e) => {
            const expanded = open.has(e.id);
            return (
              <Fragment key={e.id}>
                <TableRow hover>
                  <TableCell padding="checkbox">
                    <IconButton
                      size="small"
                      aria-expanded={expanded}
                      aria-label={`${expanded ? "Hide" : "Show"} details of entry ${e.id}`}
                      onClick={() => toggle(e.id)}
                    >
                      {expanded ? <KeyboardArrowDownIcon /> : <KeyboardArrowRightIcon />}
                    </IconButton>
                  </TableCell>
                  <TableCell>
                    <DateTime value={e.at} />
                  </TableCell>
                  <TableCell>{e.actor}</TableCell>
                  <TableCell>
                    <code>{e.action}</code>
                  </TableCell>
                  <TableCell>{e.target ?? "—"}</TableCell>
                  <TableCell>
                    <StateChip value={e.outcome} />
                  </TableCell>
                  <TableCell>{e.source_ip ?? "—"}</TableCell>
                </TableRow>
                {expanded && (
                  <TableRow>
                    <TableCell colSpan={7} sx={{ py: 0 }}>
                      <Collapse in={expanded} unmountOnExit>
                        <Box
                          component="pre"
                          sx={{ fontFamily: MONO_FONTS, fontSize: "0.8125rem", whiteSpace: "pre-wrap", overflowWrap: "anywhere", m: 0, py: 1.5 }}
                        >
                          {JSON.stringify(e.details, null, 2)}
                          {"\n"}
                          entry {e.id} · hash {e.hash}
                        </Box>
                      </Collapse>
                    </TableCell>
                  </TableRow>
                )}
              </Fragment>
            );
          })}
        </TableBody>
      </Table>
    </ScrollTable>
  );
}

/** `<input type="datetime-local">` value (local time) → RFC 3339 (UTC), or undefined. */
export function localToRfc3339(value: string): string | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}
