# SPDX-License-Identifier: Apache-2.0
# tableguard image: built with the Makefile's own targets on Debian 12, shipped as a scratch
# image holding only the binary, the shared libraries it loads, an /etc/passwd entry for the
# numeric non-root user and the default policy: no shell, no package manager, no setuid files.
#   make image        (podman or docker build with VERSION, REVISION and CREATED from the Makefile)
# tests/image/test_image.py builds this file unchanged and runs the image.

FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, so editing the sources does not reinstall them. debian:bookworm has no
# make; `make deps-build` installs the rest of the Makefile's DEB_BUILD list.
COPY Makefile VERSION ./
COPY tests/deps.sh tests/deps.sh
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && make deps-build \
 && rm -rf /var/lib/apt/lists/*
COPY . .
ARG REVISION=unknown
RUN make REVISION=${REVISION} \
 && make install REVISION=${REVISION} PREFIX=/usr/local DESTDIR=/out \
 && /out/usr/local/bin/tableguard version
# The runtime tree: the binary, every library ldd resolves (at the paths the loader looks in),
# the dynamic loader, a passwd/group entry for 65532, and the default policy.
RUN set -e; root=/rootfs; bin=/out/usr/local/bin/tableguard; \
    install -D -m 0755 "$bin" "$root/usr/local/bin/tableguard"; \
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do \
        install -D -m 0644 "$(readlink -f "$lib")" "$root$lib"; \
    done; \
    loader=$(ldd "$bin" | awk '$1 ~ /^\// { print $1 }'); \
    install -D -m 0755 "$(readlink -f "$loader")" "$root$loader"; \
    install -D -m 0644 policy/default.yaml "$root/etc/tableguard/policy/policy.yaml"; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\ntableguard:x:65532:65532:tableguard:/nonexistent:/sbin/nologin\n' >/tmp/passwd; \
    printf 'root:x:0:\ntableguard:x:65532:\n' >/tmp/group; \
    install -D -m 0644 /tmp/passwd "$root/etc/passwd"; \
    install -D -m 0644 /tmp/group "$root/etc/group"; \
    if find "$root" -perm /6000 | grep .; then echo "setuid/setgid files in the runtime tree" >&2; exit 1; fi; \
    find "$root" -type f | sort

FROM scratch
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/tableguard/tableguard
LABEL org.opencontainers.image.title="tableguard" \
      org.opencontainers.image.description="Admission webhook protecting DynamoDB tables declared in KubeVela Applications" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/blob/main/README.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="scratch"
COPY --from=build /rootfs/ /
# The chart mounts the policy and the certificates over these paths; `podman run` can too.
ENV TABLEGUARD_POLICY=/etc/tableguard/policy/policy.yaml \
    TABLEGUARD_TLS_CERT=/etc/tableguard/tls/tls.crt \
    TABLEGUARD_TLS_KEY=/etc/tableguard/tls/tls.key
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/tableguard"]
CMD ["serve"]
