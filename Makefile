# Scepter — the whole set-up is two commands on a fresh Debian 12 machine:
#   make run    install what is missing, build, start the server (SQLite, dev certificates)
#   make test   install what tests need, build with sanitizers, run every test
# Other targets: make build, make bench, make soak, make faults, make fuzz, make lint, make format,
# make clean, make image.

BUILD_DIR ?= build
TEST_BUILD_DIR ?= build-test
BENCH_BUILD_DIR ?= build-bench
LINT_BUILD_DIR ?= build-lint
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE ?= cmake

.PHONY: all build run test bench lint format check-banned clean deps-build deps-run deps-test \
	deps-bench image fuzz deps-fuzz soak deps-soak

all: build

deps-build:
	@scripts/deps.sh build

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

deps-fuzz:
	@scripts/deps.sh fuzz

deps-soak:
	@scripts/deps.sh soak

build: deps-build
	@echo "== configure $(BUILD_DIR) (release)"
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCEPTER_TESTS=OFF >/dev/null
	@echo "== build"
	$(CMAKE) --build $(BUILD_DIR) -j $(JOBS)

run: deps-run build
	@scripts/run-dev.sh $(BUILD_DIR)

test: deps-test lint
	@echo "== configure $(TEST_BUILD_DIR) (ASan + UBSan, -Werror)"
	$(CMAKE) -S . -B $(TEST_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 \
		-DSCEPTER_SANITIZE=ON -DSCEPTER_WERROR=ON -DSCEPTER_TESTS=ON >/dev/null
	@echo "== build"
	$(CMAKE) --build $(TEST_BUILD_DIR) -j $(JOBS)
	@echo "== run every test (ctest)"
	cd $(TEST_BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

bench: deps-bench
	@echo "== configure $(BENCH_BUILD_DIR) (release)"
	$(CMAKE) -S . -B $(BENCH_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DSCEPTER_TESTS=ON >/dev/null
	$(CMAKE) --build $(BENCH_BUILD_DIR) -j $(JOBS)
	@scripts/bench.sh $(BENCH_BUILD_DIR)

# The soak (not in CI): SOAK_SECONDS (3600) of mixed traffic at half the measured capacity in a
# release tree, sampled every 10 s to SOAK_OUT (build-soak/soak): soak.csv, soak.png, summary.txt.
SOAK_BUILD_DIR ?= build-soak
soak: deps-soak
	@echo "== configure $(SOAK_BUILD_DIR) (release)"
	$(CMAKE) -S . -B $(SOAK_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCEPTER_TESTS=ON >/dev/null
	$(CMAKE) --build $(SOAK_BUILD_DIR) -j $(JOBS) --target scepter scepter-sim apns-test-server
	@scripts/soak.sh $(SOAK_BUILD_DIR)

# Coverage-guided fuzzing (clang, libFuzzer, ASan + UBSan) of every parser of untrusted input:
# each target of tests/fuzz/ for FUZZ_RUNS executions (scripts/fuzz.sh; FUZZ_TIME, FUZZ_TARGETS).
FUZZ_RUNS ?= 10000000
fuzz: deps-fuzz
	@FUZZ_RUNS=$(FUZZ_RUNS) JOBS=$(JOBS) scripts/fuzz.sh

# The Docker image (docker/Dockerfile) with docker, or podman where there is no docker engine
# (scripts/container-engine.sh sets podman up on Debian 12). IMAGE names the tag.
IMAGE ?= scepter:latest
image:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		echo "== docker build -t $(IMAGE)"; \
		docker build -f docker/Dockerfile -t $(IMAGE) .; \
	elif command -v podman >/dev/null 2>&1; then \
		echo "== podman build -t $(IMAGE)"; \
		podman build --format docker -f docker/Dockerfile -t $(IMAGE) .; \
	else \
		echo "make image: neither docker nor podman; run scripts/container-engine.sh" >&2; \
		exit 1; \
	fi

check-banned:
	@scripts/check-banned.sh

# clang-format over every C file, then clang-tidy (the checks in .clang-tidy, every warning an
# error) over the project's own sources as compile_commands.json builds them.
lint: check-banned
	@echo "== clang-format"
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	@echo "== clang-tidy"
	@$(CMAKE) -S . -B $(LINT_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug -DSCEPTER_TESTS=ON \
		-DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	@run-clang-tidy -p $(LINT_BUILD_DIR) -j $(JOBS) -quiet \
		'$(CURDIR)/(apns|common|config|mdm|profiles|store|tests)/.*\.c$$' \
		>$(LINT_BUILD_DIR)/clang-tidy.log 2>&1 || { \
		grep -E 'warning:|error:' $(LINT_BUILD_DIR)/clang-tidy.log | sort -u; \
		echo "clang-tidy: see $(LINT_BUILD_DIR)/clang-tidy.log"; exit 1; }
	@echo "lint: ok"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR) $(BENCH_BUILD_DIR) $(LINT_BUILD_DIR) $(SOAK_BUILD_DIR)

# The fault suite's long version (tests/faults/; `make test` runs the short one): 20 kills of
# scepter, 200 devices, 40 fan-outs, PostgreSQL paused 10 s, 2,000 slow connections, 100
# devices pushed through a misbehaving APNs; one report line per scenario and store in
# $(TEST_BUILD_DIR)/faults-report.txt.  FAULTS_SEED=N replays a run.
.PHONY: faults
faults: deps-test
	$(CMAKE) -S . -B $(TEST_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 \
		-DSCEPTER_SANITIZE=ON -DSCEPTER_WERROR=ON -DSCEPTER_TESTS=ON \
		-DSCEPTER_FAULTS_TIMEOUT=7200 >/dev/null
	$(CMAKE) --build $(TEST_BUILD_DIR) -j $(JOBS) --target scepter test_faults apns-test-server
	rm -f $(TEST_BUILD_DIR)/faults-report.txt
	cd $(TEST_BUILD_DIR) && FAULTS_KILLS=$${FAULTS_KILLS:-20} FAULTS_DEVICES=$${FAULTS_DEVICES:-200} \
		FAULTS_COMMANDS=$${FAULTS_COMMANDS:-40} FAULTS_PG_PAUSE=$${FAULTS_PG_PAUSE:-10} \
		FAULTS_SLOW=$${FAULTS_SLOW:-2000} FAULTS_APNS_DEVICES=$${FAULTS_APNS_DEVICES:-100} \
		FAULTS_REPORT=$(CURDIR)/$(TEST_BUILD_DIR)/faults-report.txt \
		ctest -L faults -j 2 --output-on-failure --timeout 7200
	@cat $(TEST_BUILD_DIR)/faults-report.txt
