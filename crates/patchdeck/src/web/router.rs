//! Every route of the manager, with the permission it requires, in one table.
//!
//! [`Routes::add`] registers a handler and wraps it in [`authorize`] for its [`Permission`]; the
//! list it builds ([`RouteSpec`]) is what the RBAC matrix test walks and what the OpenAPI
//! document is checked against.

use std::time::Duration;

use axum::handler::Handler;
use axum::http::header::{CACHE_CONTROL, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, Method};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::MethodFilter;
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use super::authz::{authorize, Permission};
use super::handlers::agent::authorize_agent;
use super::handlers::notifications;
use super::handlers::{
    agent, audit, auth, ca, commands, dashboard, deployments, discoveries, enrollments, events, groups, health, hosts,
    inventory, passkeys, registration_tokens, settings, sso, users,
};
use super::handlers::{blackouts, maintenance_windows};
use crate::state::AppState;

/// Largest request body accepted (JSON bodies are small; CSRs and bundles are a few KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// One registered route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// The axum path template, e.g. `/api/v1/hosts/{id}`.
    pub path: &'static str,
    pub permission: Permission,
}

/// Largest agent request body: an inventory upload.
pub const MAX_AGENT_BODY_BYTES: usize = agent::MAX_INVENTORY_BYTES;

/// Builds the router and its table together.
struct Routes {
    router: Router<AppState>,
    /// `/agent/v1` routes: their own body limit and timeout (check-ins are held for minutes).
    agent_router: Router<AppState>,
    specs: Vec<RouteSpec>,
    state: AppState,
}

impl Routes {
    fn add<H, T>(mut self, method: Method, path: &'static str, permission: Permission, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("routes use standard methods");
        let mut route = axum::routing::on(filter, handler);
        match permission {
            Permission::Public => {}
            Permission::Agent => route = route.route_layer(from_fn_with_state(self.state.clone(), authorize_agent)),
            _ => route = route.route_layer(from_fn_with_state((self.state.clone(), permission), authorize)),
        }
        if path.starts_with("/agent/") {
            self.agent_router = self.agent_router.route(path, route);
        } else {
            self.router = self.router.route(path, route);
        }
        self.specs.push(RouteSpec { method, path, permission });
        self
    }
}

/// The whole API: the router (state applied) and its route table.
pub fn api(state: AppState) -> (Router, Vec<RouteSpec>) {
    use Method as M;
    use Permission as P;
    let routes = Routes { router: Router::new(), agent_router: Router::new(), specs: Vec::new(), state: state.clone() }
        // Service
        .add(M::GET, "/api/v1/health", P::Public, health::get_health)
        .add(M::GET, "/api/v1/openapi.json", P::Public, health::get_openapi)
        .add(M::GET, "/metrics", P::Admin, health::get_metrics)
        // Sign-in and the caller's own account
        .add(M::POST, "/api/v1/auth/login", P::Public, auth::login)
        .add(M::POST, "/api/v1/auth/login/mfa", P::Public, auth::login_mfa)
        .add(M::POST, "/api/v1/auth/refresh", P::Public, auth::refresh)
        .add(M::POST, "/api/v1/auth/logout", P::Session, auth::logout)
        .add(M::GET, "/api/v1/auth/me", P::Session, auth::get_me)
        .add(M::POST, "/api/v1/auth/password", P::Session, auth::change_password)
        .add(M::POST, "/api/v1/auth/mfa/totp", P::Session, auth::start_totp)
        .add(M::POST, "/api/v1/auth/mfa/totp/confirm", P::Session, auth::confirm_totp)
        .add(M::DELETE, "/api/v1/auth/mfa/totp", P::Authenticated, auth::delete_totp)
        .add(M::POST, "/api/v1/auth/mfa/recovery-codes", P::Authenticated, auth::regenerate_recovery_codes)
        .add(M::GET, "/api/v1/auth/sessions", P::Authenticated, auth::list_sessions)
        .add(M::DELETE, "/api/v1/auth/sessions/{id}", P::Authenticated, auth::delete_session)
        .add(M::GET, "/api/v1/auth/tokens", P::Authenticated, auth::list_api_tokens)
        .add(M::POST, "/api/v1/auth/tokens", P::Authenticated, auth::create_api_token)
        .add(M::DELETE, "/api/v1/auth/tokens/{id}", P::Authenticated, auth::delete_api_token)
        // Passkeys and single sign-on
        .add(M::GET, "/api/v1/auth/mfa/passkeys", P::Session, passkeys::list_passkeys)
        .add(M::POST, "/api/v1/auth/mfa/passkeys/options", P::Session, passkeys::start_passkey_registration)
        .add(M::POST, "/api/v1/auth/mfa/passkeys", P::Session, passkeys::register_passkey)
        .add(M::DELETE, "/api/v1/auth/mfa/passkeys/{id}", P::Authenticated, passkeys::delete_passkey)
        .add(M::POST, "/api/v1/auth/login/passkey/options", P::Public, passkeys::start_passkey_login)
        .add(M::POST, "/api/v1/auth/login/passkey", P::Public, passkeys::finish_passkey_login)
        .add(M::GET, "/api/v1/auth/methods", P::Public, sso::get_auth_methods)
        .add(M::GET, "/api/v1/auth/oidc/login", P::Public, sso::start_sso_login)
        .add(M::GET, "/api/v1/auth/oidc/callback", P::Public, sso::finish_sso_login)
        .add(M::GET, "/api/v1/settings/sso", P::Admin, sso::get_sso_settings)
        .add(M::PUT, "/api/v1/settings/sso", P::Admin, sso::update_sso_settings)
        // Users (admins)
        .add(M::GET, "/api/v1/users", P::Admin, users::list_users)
        .add(M::POST, "/api/v1/users", P::Admin, users::create_user)
        .add(M::GET, "/api/v1/users/{id}", P::Admin, users::get_user)
        .add(M::PATCH, "/api/v1/users/{id}", P::Admin, users::update_user)
        .add(M::DELETE, "/api/v1/users/{id}", P::Admin, users::delete_user)
        .add(M::POST, "/api/v1/users/{id}/password", P::Admin, users::set_user_password)
        .add(M::DELETE, "/api/v1/users/{id}/mfa", P::Admin, users::reset_user_mfa)
        .add(M::GET, "/api/v1/users/{id}/sessions", P::Admin, users::list_user_sessions)
        .add(M::DELETE, "/api/v1/users/{id}/sessions", P::Admin, users::revoke_user_sessions)
        // Groups (admins manage them; others see only their own)
        .add(M::GET, "/api/v1/groups", P::GroupsRead, groups::list_groups)
        .add(M::POST, "/api/v1/groups", P::Admin, groups::create_group)
        .add(M::GET, "/api/v1/groups/{id}", P::GroupsRead, groups::get_group)
        .add(M::PATCH, "/api/v1/groups/{id}", P::Admin, groups::update_group)
        .add(M::DELETE, "/api/v1/groups/{id}", P::Admin, groups::delete_group)
        .add(M::GET, "/api/v1/groups/{id}/members", P::GroupsRead, groups::list_group_members)
        .add(M::PUT, "/api/v1/groups/{id}/users/{user_id}", P::Admin, groups::add_group_user)
        .add(M::DELETE, "/api/v1/groups/{id}/users/{user_id}", P::Admin, groups::remove_group_user)
        .add(M::PUT, "/api/v1/groups/{id}/hosts/{host_id}", P::Admin, groups::add_group_host)
        .add(M::DELETE, "/api/v1/groups/{id}/hosts/{host_id}", P::Admin, groups::remove_group_host)
        // Hosts (scoped: outside the caller's groups a host is 404)
        .add(M::GET, "/api/v1/hosts", P::HostsRead, hosts::list_hosts)
        .add(M::POST, "/api/v1/hosts", P::HostsWrite, hosts::create_host)
        .add(M::GET, "/api/v1/hosts/{id}", P::HostsRead, hosts::get_host)
        .add(M::DELETE, "/api/v1/hosts/{id}", P::HostsWrite, hosts::delete_host)
        .add(M::GET, "/api/v1/hosts/{id}/packages", P::HostsRead, inventory::list_host_packages)
        .add(M::GET, "/api/v1/hosts/{id}/updates", P::HostsRead, inventory::list_host_updates)
        .add(M::GET, "/api/v1/hosts/{id}/commands", P::HostsRead, commands::list_host_commands)
        .add(M::POST, "/api/v1/hosts/{id}/commands", P::HostsWrite, commands::create_host_command)
        // Commands (scoped like their hosts)
        .add(M::GET, "/api/v1/commands", P::HostsRead, commands::list_commands)
        .add(M::POST, "/api/v1/commands", P::HostsWrite, commands::create_commands)
        .add(M::GET, "/api/v1/commands/{id}", P::HostsRead, commands::get_command)
        .add(M::POST, "/api/v1/commands/{id}/cancel", P::HostsWrite, commands::cancel_command)
        .add(M::POST, "/api/v1/commands/{id}/retry", P::HostsWrite, commands::retry_command)
        // Fleet-wide package search (scoped)
        .add(M::GET, "/api/v1/packages/search", P::HostsRead, inventory::search_packages)
        // Enrollment approval queue (admins)
        .add(M::GET, "/api/v1/discoveries", P::Admin, discoveries::list_discoveries)
        .add(M::POST, "/api/v1/discoveries", P::Admin, discoveries::start_discovery)
        .add(M::GET, "/api/v1/discoveries/{id}", P::Admin, discoveries::get_discovery)
        .add(M::POST, "/api/v1/discoveries/{id}/cancel", P::Admin, discoveries::cancel_discovery)
        .add(M::GET, "/api/v1/enrollments", P::Admin, enrollments::list_enrollments)
        .add(M::POST, "/api/v1/enrollments/{id}/approve", P::Admin, enrollments::approve_enrollment)
        .add(M::POST, "/api/v1/enrollments/{id}/reject", P::Admin, enrollments::reject_enrollment)
        // Live events (Server-Sent Events, scoped) and security events (admins)
        .add(M::GET, "/api/v1/events", P::HostsRead, events::stream_events)
        .add(M::GET, "/api/v1/security/events", P::Admin, events::list_security_events)
        // Agent registration tokens (admins)
        .add(M::GET, "/api/v1/registration-tokens", P::Admin, registration_tokens::list_registration_tokens)
        .add(M::POST, "/api/v1/registration-tokens", P::Admin, registration_tokens::create_registration_token)
        .add(M::GET, "/api/v1/registration-tokens/{id}", P::Admin, registration_tokens::get_registration_token)
        .add(M::DELETE, "/api/v1/registration-tokens/{id}", P::Admin, registration_tokens::delete_registration_token)
        // Settings (admins)
        .add(M::GET, "/api/v1/settings", P::Admin, settings::get_settings)
        .add(M::PATCH, "/api/v1/settings", P::Admin, settings::update_settings)
        .add(M::GET, "/api/v1/settings/config", P::Admin, settings::get_manager_config)
        // The dashboard's fleet numbers (scoped)
        .add(M::GET, "/api/v1/dashboard", P::HostsRead, dashboard::get_dashboard)
        // Internal CA
        .add(M::GET, "/api/v1/ca/certificate", P::Public, ca::get_ca_certificate)
        .add(M::GET, "/api/v1/ca/crl", P::Public, ca::get_crl)
        .add(M::GET, "/api/v1/certificates", P::Admin, ca::list_certificates)
        .add(M::POST, "/api/v1/certificates", P::Admin, ca::create_certificate)
        .add(M::GET, "/api/v1/certificates/{serial}", P::Admin, ca::get_certificate)
        .add(M::POST, "/api/v1/certificates/{serial}/renew", P::Admin, ca::renew_certificate)
        .add(M::POST, "/api/v1/certificates/{serial}/revoke", P::Admin, ca::revoke_certificate)
        .add(M::POST, "/api/v1/hosts/{id}/push-bundle", P::Admin, ca::create_push_bundle)
        // Audit log (admins)
        .add(M::GET, "/api/v1/audit", P::Admin, audit::list_audit)
        .add(M::GET, "/api/v1/audit/verify", P::Admin, audit::verify_audit)
        .add(M::GET, "/api/v1/audit/export", P::Admin, audit::export_audit)
        // Maintenance windows (scoped; operators manage those of their hosts and groups) and
        // blackouts (admins; everyone sees the global ones and their groups')
        .add(M::GET, "/api/v1/maintenance-windows", P::HostsRead, maintenance_windows::list_maintenance_windows)
        .add(M::POST, "/api/v1/maintenance-windows", P::HostsWrite, maintenance_windows::create_maintenance_window)
        .add(
            M::GET,
            "/api/v1/maintenance-windows/occurrences",
            P::HostsRead,
            maintenance_windows::list_window_occurrences,
        )
        .add(M::GET, "/api/v1/maintenance-windows/{id}", P::HostsRead, maintenance_windows::get_maintenance_window)
        .add(M::PUT, "/api/v1/maintenance-windows/{id}", P::HostsWrite, maintenance_windows::update_maintenance_window)
        .add(
            M::DELETE,
            "/api/v1/maintenance-windows/{id}",
            P::HostsWrite,
            maintenance_windows::delete_maintenance_window,
        )
        .add(M::GET, "/api/v1/hosts/{id}/next-window", P::HostsRead, maintenance_windows::get_host_next_window)
        .add(M::GET, "/api/v1/blackouts", P::HostsRead, blackouts::list_blackouts)
        .add(M::POST, "/api/v1/blackouts", P::Admin, blackouts::create_blackout)
        .add(M::GET, "/api/v1/blackouts/{id}", P::HostsRead, blackouts::get_blackout)
        .add(M::PUT, "/api/v1/blackouts/{id}", P::Admin, blackouts::update_blackout)
        .add(M::DELETE, "/api/v1/blackouts/{id}", P::Admin, blackouts::delete_blackout)
        // Agents (pull mode; docs/protocol.md)
        .add(M::POST, "/agent/v1/enroll", P::Public, agent::enroll)
        .add(M::POST, "/agent/v1/checkin", P::Agent, agent::checkin)
        .add(M::PUT, "/agent/v1/inventory", P::Agent, agent::put_inventory)
        .add(M::POST, "/agent/v1/certificate", P::Agent, agent::renew_certificate)
        // Deployments, group policy and workers (docs/deployments.md)
        .add(M::GET, "/api/v1/deployments", P::HostsRead, deployments::list_deployments)
        .add(M::POST, "/api/v1/deployments", P::HostsWrite, deployments::create_deployment)
        .add(M::GET, "/api/v1/deployments/{id}", P::HostsRead, deployments::get_deployment)
        .add(M::GET, "/api/v1/deployments/{id}/hosts", P::HostsRead, deployments::list_deployment_hosts)
        .add(M::POST, "/api/v1/deployments/{id}/approve", P::HostsWrite, deployments::approve_deployment)
        .add(M::POST, "/api/v1/deployments/{id}/cancel", P::HostsWrite, deployments::cancel_deployment)
        .add(M::POST, "/api/v1/deployments/{id}/retry", P::HostsWrite, deployments::retry_deployment)
        .add(M::POST, "/api/v1/deployments/{id}/rollback", P::HostsWrite, deployments::rollback_deployment)
        .add(M::GET, "/api/v1/groups/{id}/policy", P::GroupsRead, deployments::get_group_policy)
        .add(M::PUT, "/api/v1/groups/{id}/policy", P::Admin, deployments::set_group_policy)
        .add(M::GET, "/api/v1/workers", P::Admin, deployments::list_workers)
        // Notifications (admins)
        .add(M::GET, "/api/v1/notification-channels", P::Admin, notifications::list_notification_channels)
        .add(M::POST, "/api/v1/notification-channels", P::Admin, notifications::create_notification_channel)
        .add(M::GET, "/api/v1/notification-channels/{id}", P::Admin, notifications::get_notification_channel)
        .add(M::PUT, "/api/v1/notification-channels/{id}", P::Admin, notifications::update_notification_channel)
        .add(M::DELETE, "/api/v1/notification-channels/{id}", P::Admin, notifications::delete_notification_channel)
        .add(M::POST, "/api/v1/notification-channels/{id}/test", P::Admin, notifications::test_notification_channel)
        .add(M::GET, "/api/v1/notification-rules", P::Admin, notifications::list_notification_rules)
        .add(M::POST, "/api/v1/notification-rules", P::Admin, notifications::create_notification_rule)
        .add(M::GET, "/api/v1/notification-rules/{id}", P::Admin, notifications::get_notification_rule)
        .add(M::PUT, "/api/v1/notification-rules/{id}", P::Admin, notifications::update_notification_rule)
        .add(M::DELETE, "/api/v1/notification-rules/{id}", P::Admin, notifications::delete_notification_rule)
        .add(M::GET, "/api/v1/notification-deliveries", P::Admin, notifications::list_notification_deliveries);
    let Routes { router, agent_router, specs, .. } = routes;
    // A held check-in lasts at most the interval (≤ 1 h) plus the time to answer.
    let agent_timeout = state.config().agents.checkin_interval() + Duration::from_secs(120);
    let agent_router = agent_router
        .layer(from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(from_fn(super::error::envelope_fallback))
        .layer(SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(RequestBodyLimitLayer::new(MAX_AGENT_BODY_BYTES))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_AGENT_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, agent_timeout))
        .layer(from_fn(super::request_id));
    let router = router
        .fallback(super::ui::serve_ui)
        .layer(from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(from_fn(super::error::envelope_fallback))
        // API answers are private and never sniffed; the UI handler sets its own caching.
        .layer(SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::if_not_present(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
        .layer(from_fn(super::request_id))
        .merge(agent_router)
        .with_state(state);
    (router, specs)
}
