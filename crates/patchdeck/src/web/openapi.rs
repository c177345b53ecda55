//! The OpenAPI document, generated from the handlers' annotations. A test checks that it lists
//! exactly the routes of [`super::router`], and a snapshot test catches unreviewed changes.

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers::notifications;
use super::handlers::{
    agent, audit, auth, ca, commands, dashboard, deployments, discoveries, enrollments, events, groups, health, hosts,
    inventory, passkeys, registration_tokens, settings, sso, users,
};
use super::handlers::{blackouts, maintenance_windows};

#[derive(OpenApi)]
#[openapi(
    info(title = "Patchdeck manager API", description = "Fleet patch management. Errors: `{\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}`."),
    paths(
        health::get_health, health::get_metrics, health::get_openapi,
        auth::login, auth::login_mfa, auth::refresh, auth::logout, auth::get_me, auth::change_password,
        auth::start_totp, auth::confirm_totp, auth::delete_totp, auth::regenerate_recovery_codes,
        auth::list_sessions, auth::delete_session, auth::list_api_tokens, auth::create_api_token, auth::delete_api_token,
        users::list_users, users::create_user, users::get_user, users::update_user, users::delete_user,
        users::set_user_password, users::reset_user_mfa, users::list_user_sessions, users::revoke_user_sessions,
        groups::list_groups, groups::create_group, groups::get_group, groups::update_group, groups::delete_group,
        groups::list_group_members, groups::add_group_user, groups::remove_group_user, groups::add_group_host,
        groups::remove_group_host,
        hosts::list_hosts, hosts::create_host, hosts::get_host, hosts::delete_host,
        registration_tokens::list_registration_tokens, registration_tokens::create_registration_token,
        registration_tokens::get_registration_token, registration_tokens::delete_registration_token,
        settings::get_settings, settings::update_settings, settings::get_manager_config,
        dashboard::get_dashboard,
        ca::get_ca_certificate, ca::get_crl, ca::list_certificates, ca::create_certificate, ca::get_certificate,
        ca::renew_certificate, ca::revoke_certificate, ca::create_push_bundle,
        audit::list_audit, audit::verify_audit, audit::export_audit,
        passkeys::list_passkeys, passkeys::start_passkey_registration, passkeys::register_passkey,
        passkeys::delete_passkey, passkeys::start_passkey_login, passkeys::finish_passkey_login,
        sso::get_auth_methods, sso::start_sso_login, sso::finish_sso_login, sso::get_sso_settings,
        sso::update_sso_settings,
        commands::create_host_command, commands::list_host_commands, commands::create_commands,
        commands::list_commands, commands::get_command, commands::cancel_command, commands::retry_command,
        inventory::list_host_packages, inventory::list_host_updates, inventory::search_packages,
        discoveries::start_discovery, discoveries::list_discoveries, discoveries::get_discovery,
        discoveries::cancel_discovery,
        deployments::create_deployment, deployments::list_deployments, deployments::get_deployment,
        deployments::list_deployment_hosts, deployments::approve_deployment, deployments::cancel_deployment,
        deployments::retry_deployment, deployments::rollback_deployment, deployments::get_group_policy,
        deployments::set_group_policy, deployments::list_workers,
        enrollments::list_enrollments, enrollments::approve_enrollment, enrollments::reject_enrollment,
        events::stream_events, events::list_security_events,
        agent::enroll, agent::checkin, agent::put_inventory, agent::renew_certificate,
        maintenance_windows::list_maintenance_windows, maintenance_windows::create_maintenance_window,
        maintenance_windows::list_window_occurrences, maintenance_windows::get_maintenance_window,
        maintenance_windows::update_maintenance_window, maintenance_windows::delete_maintenance_window,
        maintenance_windows::get_host_next_window,
        blackouts::list_blackouts, blackouts::create_blackout, blackouts::get_blackout, blackouts::update_blackout,
        blackouts::delete_blackout,
        notifications::list_notification_channels, notifications::create_notification_channel,
        notifications::get_notification_channel, notifications::update_notification_channel,
        notifications::delete_notification_channel, notifications::test_notification_channel,
        notifications::list_notification_rules, notifications::create_notification_rule,
        notifications::get_notification_rule, notifications::update_notification_rule,
        notifications::delete_notification_rule, notifications::list_notification_deliveries,
    ),
    components(schemas(super::handlers::Order, crate::hub::LiveEvent, crate::hub::HostChange)),
    modifiers(&Security),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("pdk_api_…").build()),
        );
        components
            .add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("pd_access"))));
    }
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON (built once).
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")))
}
