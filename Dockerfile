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
USER 65534:65534
ENV TRIBUTARY_TELEMETRY__LOG_FORMAT=json
EXPOSE 8080 8081 8082
CMD ["collector"]
