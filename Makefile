# Thin driver over CMake + Ninja. `make run` and `make test` are the README's
# two commands; both install what is missing first (scripts/install-deps).
BUILD      ?= build
ASAN_BUILD ?= build-asan
LISTEN     ?= 127.0.0.1:3000
DATA_DIR   ?= ./sandbase-data
WERROR     ?= $(if $(CI),ON,OFF)
PYTEST     ?= /usr/bin/python3 -m pytest

.PHONY: all deps build build-asan run test test-unit test-integration test-asan bench clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANDBASE_WERROR=$(WERROR) >/dev/null
	@ninja -C $(BUILD) --quiet

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSANDBASE_WERROR=$(WERROR) -DSANDBASE_SANITIZE=ON >/dev/null
	@ninja -C $(ASAN_BUILD) --quiet

run: build
	@$(BUILD)/sandbase serve --listen $(LISTEN) --data-dir $(DATA_DIR) --bootstrap

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure 2>&1

test-integration: build
	@SANDBASE_BIN=$(abspath $(BUILD))/sandbase $(PYTEST) -q tests/integration

test: test-unit test-integration

# The whole suite again under AddressSanitizer + UBSan, but for the tests
# that debootstrap a Debian template (marker debootstrap): those minutes go
# to debootstrap, not to our code, and `make test` runs them.
test-asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure 2>&1
	@SANDBASE_BIN=$(abspath $(ASAN_BUILD))/sandbase SANDBASE_ASAN=1 $(PYTEST) -q -m "not debootstrap" tests/integration

bench: build
	@bench/http.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
