import { Alert, Card, CardContent, List, ListItem, ListItemText, Typography } from "@mui/material";
import { PageHeader } from "../components/PageHeader";

export interface PlannedPage {
  title: string;
  /** One sentence: what the page is for. */
  purpose: string;
  /** What it will show and let one do. */
  will: string[];
}

/** A page that is not built yet: says plainly what will be here. Shows no data. */
export function PlaceholderPage({ page }: { page: PlannedPage }) {
  return (
    <>
      <PageHeader title={page.title} subtitle={page.purpose} />
      <Alert severity="info" sx={{ mb: 2 }}>
        This page is not built yet. Nothing below is data from your manager: it is a description of what
        the page will show.
      </Alert>
      <Card variant="outlined">
        <CardContent>
          <Typography variant="subtitle1" component="h2" sx={{ fontWeight: 500 }}>
            What will be here
          </Typography>
          <List dense>
            {page.will.map((line) => (
              <ListItem key={line} disableGutters>
                <ListItemText primary={line} />
              </ListItem>
            ))}
          </List>
        </CardContent>
      </Card>
    </>
  );
}

export const PLANNED = {
  dashboard: {
    title: "Dashboard",
    purpose: "The health of the whole fleet at a glance.",
    will: [
      "Fleet health: how many hosts are up to date, have pending updates, need a reboot, or have not checked in.",
      "Compliance: the share of hosts with no pending security update, overall and per group.",
      "Pending security updates across the fleet, most urgent first.",
      "Upcoming maintenance windows and the deployments queued for them.",
      "Recent and running jobs.",
    ],
  },
  groups: {
    title: "Groups",
    purpose: "Groups of hosts, which scope what operators and viewers see and what a deployment targets.",
    will: [
      "The list of groups with their host count and members.",
      "For admins: create, rename and delete groups, move hosts between them, and assign users to them.",
      "Per-group configuration and maintenance windows.",
      "Each group's deployment policy (approval, health checks) is already editable: open a group from a host's page, or filter the host list by a group and choose Deployment policy.",
    ],
  },
  certificates: {
    title: "Certificates",
    purpose: "The manager's internal certificate authority and the certificates it issued.",
    will: [
      "The CA certificate and its fingerprint, with a download, and the certificate revocation list.",
      "Agent and manager certificates: subject, host, serial, validity and expiry warnings.",
      "Revoke a certificate.",
    ],
  },
  settings: {
    title: "Settings",
    purpose: "Manager-wide configuration that admins change at run time.",
    will: [
      "Security: whether MFA is required for local accounts, session lifetimes, lockout policy.",
      "Whether every deployment waits for an approver.",
      "Single sign-on (OIDC) status.",
      "Notifications (e-mail, signed webhooks) and the agents' check-in interval.",
      "The command-signing key's fingerprint that agents pin.",
    ],
  },
} satisfies Record<string, PlannedPage>;
