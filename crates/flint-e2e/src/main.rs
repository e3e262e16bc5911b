//! The server process of the end-to-end tests: exactly the `flint` binary's code.

fn main() -> std::process::ExitCode {
    flint_server::main()
}
