# One image with every Tributary binary; docker-compose.yml picks the command.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tributary-collector -p tributary-enricher -p tributary-activator -p tributary-cli \
    && install -D -t /out target/release/collector target/release/enricher target/release/activator target/release/tributary

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# The activator's dashboard templates (activator.templates_dir).
COPY schemas/templates /usr/share/tributary/templates
# State the services keep (checkpoints of pull subscriptions, rotated OAuth
# tokens), owned by the user they run as so a fresh volume is writable.
RUN install -d -o 65534 -g 65534 /var/lib/tributary /var/lib/tributary/checkpoints /var/lib/tributary/tokens
USER 65534:65534
ENV TRIBUTARY_TELEMETRY__LOG_FORMAT=json
EXPOSE 8080 8081 8082
CMD ["collector"]
