//! Rebooting the host and restarting the agent, behind the [`Rebooter`]
//! trait so tests never reboot the machine that runs them.

use std::fmt;
use std::time::Duration;

use patchdeck_pkg::exec::Cmd;

/// A reboot could not be scheduled.
#[derive(Debug, thiserror::Error)]
#[error("could not schedule the reboot: {0}")]
pub struct RebootError(pub String);

/// Schedules a reboot of this host.
pub trait Rebooter: Send + Sync + fmt::Debug {
    /// Schedules a reboot `delay` from now (zero: now), warning logged-in
    /// users with `message` when there is one, and returns what was done, for
    /// the job log. Called from a blocking worker thread.
    fn reboot(&self, delay: Duration, message: Option<&str>) -> Result<String, RebootError>;

    /// Asks the service manager to restart the agent (after a self-update)
    /// without waiting for it: the restart stops this process gracefully,
    /// after the running job has finished. Called from a blocking worker.
    fn restart_agent(&self) -> Result<String, RebootError>;
}

/// Reboots by running a command through the package layer's process runner
/// (own process group, timeout, C locale).
#[derive(Debug, Clone)]
pub struct CommandRebooter {
    /// Run when the delay is zero and there is no message. Default `systemctl reboot`.
    pub immediate: Vec<String>,
    /// Run for a delay or a message; `{minutes}` is replaced by the delay in
    /// whole minutes, rounded up (shutdown's unit; 0 for now), and the
    /// message, if any, is appended as the last argument (shutdown
    /// broadcasts it with `wall`). Default `shutdown -r +{minutes}`.
    pub delayed: Vec<String>,
    /// Run to restart the agent after a self-update. Default
    /// `systemctl restart --no-block patchdeck-agent.service`.
    pub restart_agent: Vec<String>,
    /// How long the command may take to return.
    pub timeout: Duration,
}

impl Default for CommandRebooter {
    fn default() -> Self {
        CommandRebooter {
            immediate: vec!["systemctl".into(), "reboot".into()],
            delayed: vec!["shutdown".into(), "-r".into(), "+{minutes}".into()],
            restart_agent: ["systemctl", "restart", "--no-block", "patchdeck-agent.service"].map(String::from).to_vec(),
            timeout: Duration::from_secs(60),
        }
    }
}

impl CommandRebooter {
    /// The command line run for `delay` and `message`.
    pub fn command_for(&self, delay: Duration, message: Option<&str>) -> Vec<String> {
        if delay.is_zero() && message.is_none() {
            return self.immediate.clone();
        }
        let minutes = delay.as_secs().div_ceil(60);
        let mut argv: Vec<String> =
            self.delayed.iter().map(|arg| arg.replace("{minutes}", &minutes.to_string())).collect();
        argv.extend(message.map(str::to_owned));
        argv
    }
}

impl CommandRebooter {
    fn run(&self, argv: &[String], what: &str) -> Result<String, RebootError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(RebootError(format!("the {what} command is empty")));
        };
        let cmd = Cmd::new(program.clone(), self.timeout).args(args);
        cmd.run_ok(&[0], None).map_err(|e| RebootError(e.to_string()))?;
        Ok(format!("ran `{cmd}`"))
    }
}

impl Rebooter for CommandRebooter {
    fn reboot(&self, delay: Duration, message: Option<&str>) -> Result<String, RebootError> {
        if let Some(message) = message {
            patchdeck_proto::orchestration::validate_reboot_message("message", message)
                .map_err(|e| RebootError(e.to_string()))?;
        }
        self.run(&self.command_for(delay, message), "reboot")
    }

    fn restart_agent(&self) -> Result<String, RebootError> {
        self.run(&self.restart_agent, "restart")
    }
}
