/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The manager in development (`patchdeck serve`) listens with TLS on 8443 and a self-signed
// certificate from its own CA, hence `secure: false`.
const manager = process.env.PATCHDECK_DEV_MANAGER ?? "https://127.0.0.1:8443";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The build is embedded in the manager binary: no source maps there.
    sourcemap: false,
    // Everything is bundled: the UI must work on an air-gapped network.
    assetsInlineLimit: 4096,
    rollupOptions: {
      output: {
        // Libraries change less often than the app: separate files cache better.
        manualChunks: {
          react: ["react", "react-dom", "react-router-dom"],
          mui: ["@mui/material", "@emotion/react", "@emotion/styled"],
          query: ["@tanstack/react-query"],
        },
      },
    },
  },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: manager, secure: false, ws: true },
      "/metrics": { target: manager, secure: false },
    },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    css: false,
    restoreMocks: true,
    unstubGlobals: true,
    // Two-core CI machines: full-page renders with MUI take a while under jsdom.
    testTimeout: 20_000,
  },
});
