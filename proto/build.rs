//! Compiles `protos/*.proto` with protox (no system `protoc`) and generates
//! the prost messages and tonic clients/servers.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "protos/types.proto",
        "protos/control.proto",
        "protos/daemon.proto",
        "protos/ca.proto",
        "protos/dispatcher.proto",
        "protos/raft.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["protos"])?;
    tonic_prost_build::configure()
        // A secret's value must never reach a log or an error through `{:?}`:
        // its Debug is written by hand (`spec::secrets`), without the bytes.
        .skip_debug([".rswarm.types.SecretSpec"])
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
