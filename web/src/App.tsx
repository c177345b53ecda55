import { Suspense, lazy, useEffect, useState, type ReactNode } from "react";
import { Route, Routes } from "react-router-dom";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { isApiError, setSessionLostHandler } from "./api/client";
import { RequireAdmin } from "./auth/RequireAdmin";
import { FullPageProgress, RequireSession, forgetSession } from "./auth/session";
import { AppShell, RestrictedLayout } from "./components/AppShell";
import { ForcedPasswordPage } from "./pages/ForcedPasswordPage";
import { LoginPage } from "./pages/LoginPage";
import { NotFoundPage } from "./pages/NotFoundPage";

// Pages that most visits never open load on demand (the MFA page brings the QR encoder).
const AccountPage = lazy(() => import("./pages/AccountPage").then((m) => ({ default: m.AccountPage })));
const MfaSetupPage = lazy(() => import("./pages/MfaSetupPage").then((m) => ({ default: m.MfaSetupPage })));
const DashboardPage = lazy(() => import("./pages/DashboardPage").then((m) => ({ default: m.DashboardPage })));
const HostsPage = lazy(() => import("./pages/HostsPage").then((m) => ({ default: m.HostsPage })));
const HostDetailPage = lazy(() => import("./pages/HostDetailPage").then((m) => ({ default: m.HostDetailPage })));
const RegistrationTokensPage = lazy(() =>
  import("./pages/RegistrationTokensPage").then((m) => ({ default: m.RegistrationTokensPage })),
);
const EnrollmentsPage = lazy(() => import("./pages/EnrollmentsPage").then((m) => ({ default: m.EnrollmentsPage })));
const DiscoveryPage = lazy(() => import("./pages/DiscoveryPage").then((m) => ({ default: m.DiscoveryPage })));
const UsersPage = lazy(() => import("./pages/UsersPage").then((m) => ({ default: m.UsersPage })));
const AuditLogPage = lazy(() => import("./pages/AuditLogPage").then((m) => ({ default: m.AuditLogPage })));
const DeploymentsPage = lazy(() => import("./pages/DeploymentsPage").then((m) => ({ default: m.DeploymentsPage })));
const DeploymentDetailPage = lazy(() =>
  import("./pages/DeploymentDetailPage").then((m) => ({ default: m.DeploymentDetailPage })),
);
const NewDeploymentPage = lazy(() => import("./pages/NewDeploymentPage").then((m) => ({ default: m.NewDeploymentPage })));
const WorkersPage = lazy(() => import("./pages/WorkersPage").then((m) => ({ default: m.WorkersPage })));
const GroupPolicyPage = lazy(() => import("./pages/GroupPolicyPage").then((m) => ({ default: m.GroupPolicyPage })));
const GroupsPage = lazy(() => import("./pages/GroupsPage").then((m) => ({ default: m.GroupsPage })));
const GroupDetailPage = lazy(() => import("./pages/GroupDetailPage").then((m) => ({ default: m.GroupDetailPage })));
const MaintenanceWindowsPage = lazy(() =>
  import("./pages/MaintenanceWindowsPage").then((m) => ({ default: m.MaintenanceWindowsPage })),
);
const SecurityEventsPage = lazy(() =>
  import("./pages/SecurityEventsPage").then((m) => ({ default: m.SecurityEventsPage })),
);
const CertificatesPage = lazy(() => import("./pages/CertificatesPage").then((m) => ({ default: m.CertificatesPage })));
const NotificationsPage = lazy(() => import("./pages/NotificationsPage").then((m) => ({ default: m.NotificationsPage })));
const SettingsPage = lazy(() => import("./pages/SettingsPage").then((m) => ({ default: m.SettingsPage })));

function Loading({ children }: { children: ReactNode }) {
  return <Suspense fallback={<FullPageProgress label="Loading the page" />}>{children}</Suspense>;
}

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // Client errors (401/403/404/409…) will not change on their own; retry only server and network errors.
        retry: (failures, error) => !(isApiError(error) && error.status >= 400 && error.status < 500) && failures < 2,
        staleTime: 15_000,
      },
      mutations: { retry: false },
    },
  });
}

/** Routes, given a query client. */
export function AppRoutes() {
  const adminPage = (page: ReactNode) => (
    <RequireAdmin>
      <Loading>{page}</Loading>
    </RequireAdmin>
  );
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route
        path="/change-password"
        element={
          <RequireSession restriction="password_change">
            <RestrictedLayout>
              <ForcedPasswordPage />
            </RestrictedLayout>
          </RequireSession>
        }
      />
      <Route
        path="/setup-mfa"
        element={
          <RequireSession restriction="mfa_enrollment">
            <RestrictedLayout>
              <Loading>
                <MfaSetupPage forced />
              </Loading>
            </RestrictedLayout>
          </RequireSession>
        }
      />
      <Route
        element={
          <RequireSession restriction={null}>
            <AppShell />
          </RequireSession>
        }
      >
        <Route
          index
          element={
            <Loading>
              <DashboardPage />
            </Loading>
          }
        />
        <Route
          path="hosts"
          element={
            <Loading>
              <HostsPage />
            </Loading>
          }
        />
        <Route
          path="hosts/:id"
          element={
            <Loading>
              <HostDetailPage />
            </Loading>
          }
        />
        <Route
          path="deployments"
          element={
            <Loading>
              <DeploymentsPage />
            </Loading>
          }
        />
        <Route
          path="deployments/new"
          element={
            <Loading>
              <NewDeploymentPage />
            </Loading>
          }
        />
        <Route
          path="deployments/:id"
          element={
            <Loading>
              <DeploymentDetailPage />
            </Loading>
          }
        />
        <Route
          path="groups"
          element={
            <Loading>
              <GroupsPage />
            </Loading>
          }
        />
        <Route
          path="groups/:id"
          element={
            <Loading>
              <GroupDetailPage />
            </Loading>
          }
        />
        <Route
          path="groups/:id/policy"
          element={
            <Loading>
              <GroupPolicyPage />
            </Loading>
          }
        />
        <Route
          path="maintenance-windows"
          element={
            <Loading>
              <MaintenanceWindowsPage />
            </Loading>
          }
        />
        <Route path="workers" element={adminPage(<WorkersPage />)} />
        <Route path="registration-tokens" element={adminPage(<RegistrationTokensPage />)} />
        <Route path="enrollments" element={adminPage(<EnrollmentsPage />)} />
        <Route path="discovery" element={adminPage(<DiscoveryPage />)} />
        <Route path="users" element={adminPage(<UsersPage />)} />
        <Route path="certificates" element={adminPage(<CertificatesPage />)} />
        <Route path="settings" element={adminPage(<SettingsPage />)} />
        <Route path="notifications" element={adminPage(<NotificationsPage />)} />
        <Route path="audit-log" element={adminPage(<AuditLogPage />)} />
        <Route path="security-events" element={adminPage(<SecurityEventsPage />)} />
        <Route
          path="account"
          element={
            <Loading>
              <AccountPage />
            </Loading>
          }
        />
        <Route
          path="account/mfa"
          element={
            <Loading>
              <MfaSetupPage />
            </Loading>
          }
        />
        <Route path="*" element={<NotFoundPage />} />
      </Route>
    </Routes>
  );
}

/** The app below the router and theme: data layer plus routes. */
export function App({ client: given }: { client?: QueryClient }) {
  const [client] = useState(() => given ?? makeQueryClient());
  useEffect(() => {
    // The session could not be refreshed: forget it; the route guards send the user to sign in.
    setSessionLostHandler(() => forgetSession(client));
  }, [client]);
  return (
    <QueryClientProvider client={client}>
      <AppRoutes />
    </QueryClientProvider>
  );
}
