import { render } from "@testing-library/react";
import { MemoryRouter, useLocation } from "react-router-dom";
import { QueryClient } from "@tanstack/react-query";
import { App } from "../App";
import { AppThemeProvider } from "../theme";

/** Shows the current path, so tests can check where the app went. */
function LocationProbe() {
  const location = useLocation();
  return <div data-testid="location">{location.pathname}</div>;
}

/** Renders the whole app at `path` with a fresh query client (no retries). */
export function renderApp(path = "/") {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  const utils = render(
    <AppThemeProvider>
      <MemoryRouter initialEntries={[path]} future={{ v7_startTransition: true, v7_relativeSplatPath: true }}>
        <App client={client} />
        <LocationProbe />
      </MemoryRouter>
    </AppThemeProvider>,
  );
  return { ...utils, client };
}
