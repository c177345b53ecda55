// A titled card of a page of cards (the dashboard, security health), and what goes in it while
// its query loads or fails.

import type { ReactNode } from "react";
import { Link as RouterLink } from "react-router-dom";
import { Box, Card, CardContent, Link, Skeleton, Typography } from "@mui/material";
import type { UseQueryResult } from "@tanstack/react-query";
import { ErrorPanel } from "./errors";

interface SectionCardProps {
  /** The title's element id, the section's accessible name. */
  id: string;
  title: string;
  /** "All deployments" and where it goes. */
  link?: { to: string; label: string };
  children: ReactNode;
  /** Spans every column of the page's grid. */
  wide?: boolean;
}

/** One titled card (a labelled section), with an optional link beside its title. */
export function SectionCard({ id, title, link, children, wide }: SectionCardProps) {
  return (
    <Card
      variant="outlined"
      component="section"
      aria-labelledby={id}
      sx={{ display: "flex", flexDirection: "column", minWidth: 0, gridColumn: wide ? "1 / -1" : undefined }}
    >
      <CardContent sx={{ flexGrow: 1 }}>
        <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "baseline", justifyContent: "space-between", gap: 1, mb: 1.5 }}>
          <Typography variant="h6" component="h2" id={id}>
            {title}
          </Typography>
          {link && (
            <Link component={RouterLink} to={link.to} variant="body2">
              {link.label}
            </Link>
          )}
        </Box>
        {children}
      </CardContent>
    </Card>
  );
}

/** A card's skeleton (`lines` high) while its data loads, its error with Retry, or its content. */
export function CardBody<T>({
  query,
  what,
  lines = 3,
  children,
}: {
  query: UseQueryResult<T>;
  what: string;
  lines?: number;
  children: (data: T) => ReactNode;
}) {
  if (query.isPending) {
    return (
      <Box role="status" aria-busy="true" aria-label={`Loading ${what}`}>
        {Array.from({ length: lines }, (_, i) => (
          <Skeleton key={i} height={32} />
        ))}
      </Box>
    );
  }
  if (query.isError) {
    return <ErrorPanel error={query.error} title={`Could not load ${what}`} onRetry={() => void query.refetch()} />;
  }
  return <>{children(query.data)}</>;
}
