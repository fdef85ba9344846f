//! The exaprobe binary: everything lives in the library; see [`exaprobe::app::main`].

fn main() -> std::process::ExitCode {
    exaprobe::app::main().into()
}
