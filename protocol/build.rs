//! Generates the prost types for the service protocol from `proto/*.proto`.
//!
//! Only messages are generated (no gRPC services), so tonic is not needed at run time.
//! `bytes` fields become `prost::bytes::Bytes` so that payloads sliced off an HTTP body
//! can be handed around without copying. All four files share one protobuf package, so
//! prost emits a single Rust module for them.

const PROTOS: &[&str] =
    &["proto/common.proto", "proto/control.proto", "proto/commands.proto", "proto/notifications.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(false)
        .bytes(".")
        .compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
