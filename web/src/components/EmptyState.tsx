import { Box, Typography } from "@mui/material";
import type { ReactNode } from "react";

interface EmptyStateProps {
  title: string;
  /** What to do next. */
  children?: ReactNode;
  action?: ReactNode;
}

export function EmptyState({ title, children, action }: EmptyStateProps) {
  return (
    <Box sx={{ py: 4, px: 2, textAlign: "center", color: "text.secondary" }}>
      <Typography variant="subtitle1" component="p" sx={{ color: "text.primary", fontWeight: 500 }}>
        {title}
      </Typography>
      {children && (
        <Typography variant="body2" component="div" sx={{ mt: 0.5 }}>
          {children}
        </Typography>
      )}
      {action && <Box sx={{ mt: 2 }}>{action}</Box>}
    </Box>
  );
}
