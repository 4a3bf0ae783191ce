# syntax=docker/dockerfile:1
# Multi-stage build of consumption-metrics: a Rust build stage with what rdkafka's cmake build
# needs, and a distroless runtime with only the libraries the binary links, running as a
# numeric non-root user. Build: docker build -t consumption-metrics:<version>-<commit> . (the Jenkinsfile's tag).

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# The build packages come from the project's one list (scripts/install-deps.sh --build-only),
# the same one CI and the tests use, so the image cannot lack a header the tests had.
COPY scripts/install-deps.sh scripts/
RUN bash scripts/install-deps.sh --build-only \
 && rm -rf /var/lib/apt/lists/*
# Dependencies first, so that a source change does not rebuild librdkafka. The workspace's
# other member, the test data generator (synth/), is copied because the workspace manifest
# names it, and never built: every build here is `-p consumption-metrics`.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY synth ./synth
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
 && cargo build --release --locked -p consumption-metrics --bin consumption-metrics \
 && rm -rf src
COPY src ./src
# zlib is linked by librdkafka and is not part of the distroless base: it is copied to the same
# (multiarch) path it has here, whatever the architecture.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked -p consumption-metrics --bin consumption-metrics \
 && strip target/release/consumption-metrics \
 && mkdir -p /out/root \
 && cp target/release/consumption-metrics /out/ \
 && cp --parents "$(ldd target/release/consumption-metrics | awk '/libz\.so/ {print $3}')" /out/root/

# distroless/cc: glibc, libgcc, libssl3/libcrypto3 and CA certificates; no shell, no package
# manager. The :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/root/ /
COPY --from=build /out/consumption-metrics /usr/local/bin/consumption-metrics
USER 65532:65532
# Smoke step in the runtime image itself (exec form: no shell needed): proves every linked
# library is present and the binary starts.
RUN ["/usr/local/bin/consumption-metrics", "--version"]
# Everything is configured by environment variables or flags (docs/configuration.md); the job writes
# nothing to the file system, so it runs with a read-only root.
ENV LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/consumption-metrics"]
