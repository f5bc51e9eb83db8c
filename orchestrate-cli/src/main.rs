//! The stock `orchestrate` binary: the command line with the built-in
//! agents (`shell`, `echo`, `sleep`, `approval`).

fn main() -> std::process::ExitCode {
    orchestrate_cli::Cli::stock().run()
}
