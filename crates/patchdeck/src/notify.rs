// TEMP SHIM
pub enum NotificationEvent {
    DeploymentFinished { deployment_id: i64, name: String, succeeded: u32, failed: u32, skipped: u32 },
    DeploymentFailed { deployment_id: i64, name: String, succeeded: u32, failed: u32, reason: String },
    DeploymentHalted { deployment_id: i64, name: String, ring: String, success_rate: f64, threshold: f64 },
}
pub struct Notifier;
impl Notifier { pub async fn emit(&self, _e: NotificationEvent) -> Result<(), String> { Ok(()) } }
