// A table row's actions: small icon buttons with a tooltip, or text buttons, named after the row.

import type { ReactNode } from "react";
import { Box, Button, IconButton, Tooltip } from "@mui/material";
import EditIcon from "@mui/icons-material/Edit";
import DeleteIcon from "@mui/icons-material/Delete";

/** A small icon button: `title` as its tooltip, `label` as its accessible name. */
export function IconAction({ title, label, onClick, children }: { title: string; label: string; onClick: () => void; children: ReactNode }) {
  return (
    <Tooltip title={title}>
      <IconButton size="small" aria-label={label} onClick={onClick}>
        {children}
      </IconButton>
    </Tooltip>
  );
}

interface EditDeleteProps {
  /** What the row is, in the buttons' names: "Edit window weekend", "Delete window weekend". */
  name: string;
  onEdit: () => void;
  onDelete: () => void;
}

/** Edit and Delete as icon buttons. */
export function EditDeleteIcons({ name, onEdit, onDelete }: EditDeleteProps) {
  return (
    <>
      <IconAction title="Edit" label={`Edit ${name}`} onClick={onEdit}>
        <EditIcon fontSize="small" />
      </IconAction>
      <IconAction title="Delete" label={`Delete ${name}`} onClick={onDelete}>
        <DeleteIcon fontSize="small" />
      </IconAction>
    </>
  );
}

/** A row's text buttons, side by side. */
export function RowButtons({ children }: { children: ReactNode }) {
  return <Box sx={{ display: "inline-flex", gap: 0.5 }}>{children}</Box>;
}

/** Edit and Delete as small text buttons (Delete in the error colour). */
export function EditDeleteButtons({ name, onEdit, onDelete, editDisabled }: EditDeleteProps & { editDisabled?: boolean }) {
  return (
    <>
      <Button size="small" onClick={onEdit} disabled={editDisabled} aria-label={`Edit ${name}`}>
        Edit
      </Button>
      <Button size="small" color="error" onClick={onDelete} aria-label={`Delete ${name}`}>
        Delete
      </Button>
    </>
  );
}
