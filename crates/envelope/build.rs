//! Generates the envelope types from the `.proto` kept under `schemas/proto`.
//! `protoc` comes from `protoc-bin-vendored` so no system package is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../../schemas/proto";
    let proto = format!("{proto_root}/tributary/envelope/v1/raw_event.proto");
    println!("cargo:rerun-if-changed={proto}");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // Bodies as `bytes::Bytes`: the collector moves the request body in without copying.
    config.bytes(["."]);
    config.compile_protos(&[proto.as_str()], &[proto_root])?;
    Ok(())
}
