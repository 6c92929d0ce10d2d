//! Generates the Pub/Sub API's messages from `schemas/proto/eventbus/v1`.
//! The gRPC client and server are written by hand in `src/` (two methods).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../../schemas/proto";
    let proto = format!("{proto_root}/eventbus/v1/pubsub_api.proto");
    println!("cargo:rerun-if-changed={proto}");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&[proto.as_str()], &[proto_root])?;
    Ok(())
}
