# pdvault in a container: a static binary (SQLite linked in) on distroless,
# running as a non-root user, the vault in a volume. docs/operations.md.
#
#   docker build -t pdvault .
#   docker volume create pdvault
#   docker run --rm -it -v pdvault:/var/lib/pdvault pdvault init
#   docker run -d --name pdvault -p 443:8443 -p 80:8080 -v pdvault:/var/lib/pdvault \
#     -v /etc/pdvault/passphrase:/run/secrets/passphrase:ro \
#     pdvault serve --addr :8443 --http-addr :8080 --domain vault.example.org \
#       --passphrase-file /run/secrets/passphrase
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# cgo for SQLite, linked statically so that the image needs no libc.
RUN CGO_ENABLED=1 go build -trimpath \
      -tags 'osusergo netgo sqlite_omit_load_extension' \
      -ldflags '-s -w -linkmode external -extldflags -static' \
      -o /out/pdvault ./cmd/pdvault && \
    CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/pdvault-org ./cmd/pdvault-org && \
    mkdir -p /out/var/lib/pdvault

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pdvault /out/pdvault-org /usr/local/bin/
COPY --from=build --chown=nonroot:nonroot --chmod=0700 /out/var/lib/pdvault /var/lib/pdvault
USER nonroot:nonroot
ENV PDVAULT_DIR=/var/lib/pdvault
VOLUME ["/var/lib/pdvault"]
EXPOSE 8700
ENTRYPOINT ["/usr/local/bin/pdvault"]
# Plain HTTP on all interfaces of the container: put TLS in front, or pass
# --domain / --tls-cert (see above).
CMD ["serve", "--addr", ":8700"]
