// Typed fixtures of the admin pages (settings, certificates, notifications).

import type { ManagerConfigView } from "../api/settings";

export const config: ManagerConfigView = {
  agents: { checkin_interval_secs: 300 },
  push: { health_interval_secs: 300, inventory_interval_secs: 1800 },
  deployments: { poll_interval_secs: 5, retention_days: 90 },
  audit: { retention_days: 183 },
  notifications: { retention_days: 30 },
  auth: {
    access_token_minutes: 15,
    refresh_idle_minutes: 60,
    session_max_hours: 12,
    lockout_threshold: 5,
    lockout_minutes: 15,
    api_token_max_days: 365,
  },
  signing: {
    command_key_fingerprint: "SHA256:9f2c5be1d0a4",
    ca_fingerprint: "3f1c0a9e77d2b4c1",
  },
};
