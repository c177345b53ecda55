use std::process::ExitCode;

fn main() -> ExitCode {
    patchdeck_agent::cli::main()
}
