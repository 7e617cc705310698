# Entry points: `make run` (the main job) and `make test` (every test). Both install
# what they need first.
BUILD ?= build
JOBS ?= $(shell nproc)
PY := /usr/bin/python3
PREFIX ?= /usr/local

.PHONY: setup build run test bench clean install

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@bash scripts/run_demo.sh $(BUILD)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# The binary into $(PREFIX)/bin and the demo model into $(PREFIX)/share/meshlm/models
# (DESTDIR is honoured for staging).
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
