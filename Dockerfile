# SPDX-License-Identifier: Apache-2.0
# tableguard image: built with the Makefile's own targets, run as a numeric non-root user
# on debian:bookworm-slim with only the shared libraries the binary links.
#   make image        (docker build with VERSION and REVISION from the Makefile)

FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, so editing the sources does not reinstall them.
COPY Makefile VERSION ./
COPY tests/deps.sh tests/deps.sh
RUN make deps-build && rm -rf /var/lib/apt/lists/*
COPY . .
ARG REVISION=unknown
RUN make REVISION=${REVISION} \
 && make install REVISION=${REVISION} PREFIX=/usr/local DESTDIR=/out \
 && /out/usr/local/bin/tableguard version

FROM debian:bookworm-slim
ARG VERSION=0.0.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tableguard" \
      org.opencontainers.image.description="Admission webhook protecting DynamoDB tables declared in KubeVela Applications" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmicrohttpd12 libgnutls30 libcjson1 libyaml-0-2 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/usr/local/bin/tableguard /usr/local/bin/tableguard
COPY policy/default.yaml /etc/tableguard/policy/policy.yaml
# The chart mounts the policy and the certificates over these paths; `docker run` can too.
ENV TABLEGUARD_POLICY=/etc/tableguard/policy/policy.yaml \
    TABLEGUARD_TLS_CERT=/etc/tableguard/tls/tls.crt \
    TABLEGUARD_TLS_KEY=/etc/tableguard/tls/tls.key
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/tableguard"]
CMD ["serve"]
