//! `openephys-zmq2osc`: the bridge binary. Thin: flags → [`zmq2osc::app::run`] → exit code.

use clap::Parser;
use mimalloc::MiMalloc;
use std::process::ExitCode;
use zmq2osc::cli::Args;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    match zmq2osc::app::run(Args::parse()) {
        Ok(code) => ExitCode::from(code),
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}
