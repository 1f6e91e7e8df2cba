# syntax=docker/dockerfile:1
# Build: docker build -t wildix-export .   (or: docker compose build)
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION=${VERSION} sh .ci/build-static /out

# A static binary on distroless: CA certificates, no shell, a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wildix-export /out/pbxsim /usr/local/bin/
WORKDIR /home/nonroot
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/wildix-export"]
CMD ["run"]
