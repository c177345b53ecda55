// A host's certificates on its page (admins only: `GET /api/v1/certificates` is admin-only, so
// render this only for an administrator; it sends the request as soon as it mounts).

import { Link as RouterLink } from "react-router-dom";
import { Box, Button, Table, TableBody, TableCell, TableHead, TableRow, Typography } from "@mui/material";
import { useQuery } from "@tanstack/react-query";
import { certificatesApi, settingsKeys, type CertificateQuery } from "../api/settings";
import { MONO_FONTS } from "../theme";
import { ExpiryChip, KIND_LABELS } from "./CertificateChip";
import { DateTime } from "./DateTime";
import { EmptyState } from "./EmptyState";
import { ListBody, ScrollTable } from "./tables";

/** The most certificates listed here; the rest are on the certificates page. */
const SHOWN = 10;

export function HostCertificates({ hostId }: { hostId: number }) {
  const q: CertificateQuery = { host_id: hostId, limit: SHOWN, offset: 0 };
  const certs = useQuery({
    queryKey: settingsKeys.certificateList(q),
    queryFn: ({ signal }) => certificatesApi.list(q, signal),
  });
  const items = certs.data?.items ?? [];
  const now = new Date();
  return (
    <>
      <ListBody
        query={certs}
        what="the certificates"
        isEmpty={items.length === 0}
        empty={
          <EmptyState title="No certificates for this host">
            A pull host's agent gets one when it enrolls; a push host's comes with its push bundle.
          </EmptyState>
        }
      >
        <ScrollTable label="Certificates of this host">
          <Table size="small" aria-label="Certificates of this host">
            <TableHead>
              <TableRow>
                <TableCell>Kind</TableCell>
                <TableCell>Serial</TableCell>
                <TableCell>Valid</TableCell>
                <TableCell>Status</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {items.map((c) => (
                <TableRow key={c.serial}>
                  <TableCell>{KIND_LABELS[c.kind] ?? c.kind}</TableCell>
                  <TableCell sx={{ fontFamily: MONO_FONTS, fontSize: "0.75rem" }}>{c.serial}</TableCell>
                  <TableCell>
                    <DateTime value={c.not_before} /> – <DateTime value={c.not_after} />
                  </TableCell>
                  <TableCell>
                    <ExpiryChip cert={c} now={now} />
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </ScrollTable>
        {certs.data && certs.data.total > items.length && (
          <Typography variant="caption" color="text.secondary" component="p" sx={{ mt: 1 }}>
            The first {items.length} of {certs.data.total}.
          </Typography>
        )}
      </ListBody>
      <Box sx={{ mt: 1.5 }}>
        <Button variant="outlined" size="small" component={RouterLink} to={`/certificates?host_id=${hostId}`}>
          Manage certificates
        </Button>
      </Box>
    </>
  );
}
