# tokenstore build, test and tooling. Every tool is pinned here and installed
# into .tools/ from the Go module proxy, so a fresh clone needs only Go.

GO          ?= go
TOOLS       := $(CURDIR)/.tools
BUF_VERSION            := v1.75.0
PROTOC_GEN_GO_VERSION  := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.5.1
STATICCHECK_VERSION    := v0.8.2

.PHONY: all build test test-short lint vet fmt-check staticcheck proto proto-check tools run bench bench-scale clean cluster-test image compose-up compose-down fuzz

all: build

build:
	$(GO) build -o bin/ ./cmd/tokenstore ./cmd/tokenctl

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/staticcheck

# proto regenerates api/ from proto/.
proto: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc
	rm -rf api
	$(TOOLS)/buf lint
	$(TOOLS)/buf generate

# proto-check fails when api/ is not what proto/ generates.
proto-check: proto
	@git diff --exit-code --stat -- api || (echo "api/ is stale: run 'make proto' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- api)" || (echo "api/ has untracked generated files: run 'make proto' and commit" >&2; git status --porcelain -- api; exit 1)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^api/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck: $(TOOLS)/staticcheck
	$(TOOLS)/staticcheck ./...

lint: fmt-check vet staticcheck proto-check

# test is the README's test command: lint, then every test with the race
# detector where it matters. Long fault campaigns live in cluster-test.
test: lint build
	$(GO) test -count=1 -timeout 15m ./...

test-short: build
	$(GO) test -count=1 -short ./...

# fuzz runs every fuzz target (every "func Fuzz..." in a _test.go file of
# this module) for FUZZTIME each: go test -fuzz takes one target per run. A
# crasher is written to testdata/fuzz/<Target>/ of its package: fix the
# cause and commit the file, plain "go test" then runs it as a regression
# test. docs/hardening.md lists what each target checks.
FUZZTIME ?= 30s

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# run starts a local three-member cluster with data under ./data.
run: build
	./scripts/run-local.sh

bench: build
	./scripts/bench.sh

# bench-scale stores 1,000,000 tokens in tokenstore and in etcd (about 6
# minutes): memory per member, restart and catch-up times.
bench-scale: build
	./scripts/bench.sh -scale

cluster-test: build
	$(GO) test -count=1 -v -timeout $${CLUSTER_TEST_TIMEOUT:-90m} -tags clustertest ./cluster-test/...

# image builds the container image (deploy/docker/Dockerfile) FROM scratch
# from static binaries: no base image, no registry.
IMAGE           ?= tokenstore:dev
IMAGE_CONTEXT   := bin/image
COMPOSE         ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_PROJECT ?= tokenstore
COMPOSE_FILE    := deploy/docker/compose.yaml

image:
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(IMAGE_CONTEXT)/ ./cmd/tokenstore ./cmd/tokenctl
	docker build -f deploy/docker/Dockerfile -t $(IMAGE) $(IMAGE_CONTEXT)

# compose-up starts a three-member cluster that forms itself through gossip;
# compose-down stops it and deletes its volumes.
compose-up: image build
	TOKENSTORE_IMAGE=$(IMAGE) $(COMPOSE) -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) up -d
	@export TOKENCTL_ENDPOINTS=127.0.0.1:$${TOKENSTORE_COMPOSE_PORT_CLIENT_1:-23790},127.0.0.1:$${TOKENSTORE_COMPOSE_PORT_CLIENT_2:-23791},127.0.0.1:$${TOKENSTORE_COMPOSE_PORT_CLIENT_3:-23792}; \
	mkdir -p data && rm -rf data/compose-ca && for i in $$(seq 1 100); do \
	  docker cp "$$($(COMPOSE) -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) ps -q tokenstore-1)":/var/lib/tokenstore-ca/ca data/compose-ca 2>/dev/null && break; sleep 0.3; done; \
	echo "export TOKENCTL_CACERT=$(CURDIR)/data/compose-ca/ca.crt TOKENCTL_CERT=$(CURDIR)/data/compose-ca/admin.crt TOKENCTL_KEY=$(CURDIR)/data/compose-ca/admin.key" >data/compose-tokenctl.env; \
	. ./data/compose-tokenctl.env; \
	echo "waiting for a leader at $$TOKENCTL_ENDPOINTS ..."; for i in $$(seq 1 100); do \
	  ./bin/tokenctl status -o json 2>/dev/null | grep -q '"leader": {' && break; sleep 0.3; done; \
	./bin/tokenctl status

compose-down:
	$(COMPOSE) -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) down -v

clean:
	rm -rf bin data cluster-test/out
