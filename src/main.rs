//! The exaprobe binary: everything lives in the library; see [`exaprobe::cli::main`].

fn main() -> std::process::ExitCode {
    exaprobe::cli::main()
}
