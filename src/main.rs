//! The `vouch` binary: everything lives in the library; this only maps the
//! outcome to the exit status.

fn main() -> std::process::ExitCode {
    vouch::cli::main()
}
