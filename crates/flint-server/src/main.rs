//! The `flint` binary (everything is in the library: [`flint_server::main`]).

fn main() -> std::process::ExitCode {
    flint_server::main()
}
