import { Link as RouterLink } from "react-router-dom";
import { Button } from "@mui/material";
import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";

export function NotFoundPage() {
  return (
    <>
      <PageHeader title="Page not found" />
      <EmptyState
        title="There is no page at this address."
        action={
          <Button component={RouterLink} to="/" variant="contained">
            Go to the dashboard
          </Button>
        }
      >
        Check the address, or use the navigation.
      </EmptyState>
    </>
  );
}
